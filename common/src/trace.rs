//! One trace per upload, across processes: the W3C `traceparent` of the upload's request is
//! kept in its record, carried by its job (in the message, and as the `traceparent` header of
//! the AMQP message), continued by the worker's span, and carried back by the result.
//!
//! With the `otlp` feature the spans are OpenTelemetry spans (the binaries export them over
//! OTLP when `tracing.otlp_endpoint` is set) and these functions read and follow their
//! context; without it, there is no context to carry and they do nothing.

/// The W3C `traceparent` of the current span, to hand to another process; `None` without
/// the `otlp` feature, or outside a recorded trace.
pub fn current() -> Option<String> {
    #[cfg(feature = "otlp")]
    {
        use opentelemetry::propagation::TextMapPropagator;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let context = tracing::Span::current().context();
        let mut carrier = std::collections::HashMap::new();
        opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .inject_context(&context, &mut carrier);
        carrier.remove("traceparent")
    }
    #[cfg(not(feature = "otlp"))]
    None
}

/// Makes `span` continue the trace `traceparent` names (from another process).
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    #[cfg(feature = "otlp")]
    if let Some(traceparent) = traceparent {
        use opentelemetry::propagation::TextMapPropagator;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let carrier =
            std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        let context =
            opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
        let _ = span.set_parent(context);
    }
    #[cfg(not(feature = "otlp"))]
    let _ = (span, traceparent);
}
