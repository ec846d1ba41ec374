//! Exporting traces over OTLP/HTTP (the `otlp` feature): an OpenTelemetry tracer provider
//! with a batch exporter, as a `tracing` layer. Spans are sent in batches from a thread of the
//! exporter's own, and flushed when the binary ends ([`shutdown`]).

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The provider, kept to be flushed at the end.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// A layer exporting spans to `endpoint` (an OTLP/HTTP traces URL) as `service`.
pub fn layer<S>(endpoint: &str, service: &str) -> Result<impl Layer<S>, String>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|error| format!("cannot export traces to {endpoint}: {error}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("thumbnailify");
    let _ = PROVIDER.set(provider);
    Ok(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Sends the spans not sent yet.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.shutdown()
    {
        eprintln!("error: cannot flush traces: {error}");
    }
}
