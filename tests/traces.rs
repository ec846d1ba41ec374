//! One trace per upload, across processes (the `otlp` feature): a gateway and a worker on
//! RabbitMQ export their spans over OTLP/HTTP to a receiver in this test, which decodes them
//! (OTLP protobuf). The upload's request span, the worker's job span and the gateway's result
//! span must be one trace, each the child of the one before, as the W3C `traceparent` carried
//! by the record, the job and the result says.
#![cfg(feature = "otlp")]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use support::{Backend, Gateway};

/// A span as received: its service, name, trace, id and parent (hex).
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP receiver on loopback; returns its traces URL and what it received.
async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut sink = sink.lock().unwrap();
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                            AnyValue::StringValue(name) => Some(name.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                        sink.push(Received {
                            service: service.clone(),
                            name: span.name,
                            trace: hex(&span.trace_id),
                            id: hex(&span.span_id),
                            parent: hex(&span.parent_span_id),
                        });
                    }
                }
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

// Multi-threaded: the receiver must answer while the test waits for the processes to stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_one_trace_from_the_request_through_the_worker_and_back() {
    let (url, received) = receiver().await;
    let yaml = format!("tracing: {{otlp_endpoint: '{url}'}}");
    let mut gateway = Gateway::start(Backend::RabbitMq, &yaml).await;
    let id = gateway.upload_fixture("jpeg-baseline.jpg").await;
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Completed", "{record}");
    // 00-<trace>-<span>-<flags>: the request's span.
    let traceparent = record["traceparent"].as_str().expect("the record's trace");
    let parts: Vec<&str> = traceparent.split('-').collect();
    let (trace, request) = (parts[1].to_owned(), parts[2].to_owned());

    // The processes flush their spans as they stop.
    for index in 0..gateway.workers.len() {
        assert!(gateway.terminate_worker(index));
    }
    assert!(gateway.terminate());

    let deadline = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans: Vec<Received> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|span| span.trace == trace)
            .cloned()
            .collect();
        let has = |service: &str, name: &str| {
            spans.iter().any(|s| s.service == service && s.name == name)
        };
        if has("thumbnailify-gateway", "request")
            && has("thumbnailify-worker", "job")
            && has("thumbnailify-gateway", "result")
        {
            break spans;
        }
        assert!(Instant::now() < deadline, "{spans:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let request_span = spans
        .iter()
        .find(|s| s.name == "request")
        .expect("the request span");
    assert_eq!(request_span.id, request, "{spans:#?}");
    let job = spans
        .iter()
        .find(|s| s.name == "job" && s.service == "thumbnailify-worker")
        .unwrap();
    assert_eq!(
        job.parent, request,
        "the job continues the request: {spans:#?}"
    );
    let result = spans
        .iter()
        .filter(|s| s.name == "result" && s.service == "thumbnailify-gateway")
        .collect::<Vec<_>>();
    assert!(
        result.iter().all(|r| r.parent == job.id),
        "the results continue the job: {spans:#?}"
    );
}
