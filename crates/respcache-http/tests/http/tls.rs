//! HTTPS through rustls with the aws-lc-rs provider: a local TLS origin
//! with a self-signed certificate the client is told to trust.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use respcache_http::{CachedClient, ErrorKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_origin_through_rustls_with_http2() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der: CertificateDer<'static> = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let mut server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let seen_versions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (h, v) = (hits.clone(), seen_versions.clone());
    let server_task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, h, v) = (acceptor.clone(), h.clone(), v.clone());
            connections.spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    v.lock().unwrap().push(req.version());
                    async move {
                        let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"secure")));
                        r.headers_mut()
                            .insert("cache-control", "max-age=60".parse().unwrap());
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = CachedClient::builder()
        .tls_config(tls)
        .build(crate::memory().await)
        .await
        .unwrap();
    let url = format!("https://localhost:{port}/secure");
    let first = client.get(&url).send().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), first.text().as_str()),
        (200, "secure")
    );
    assert_eq!(first.version(), http::Version::HTTP_2, "ALPN chose HTTP/2");
    let hit = client.get(&url).send().await.unwrap();
    assert!(hit.from_cache());
    assert_eq!(
        hit.version(),
        http::Version::HTTP_2,
        "a stored answer keeps its version"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(*seen_versions.lock().unwrap(), [http::Version::HTTP_2]);

    // A client that does not trust the certificate gets a connection error.
    let untrusting = CachedClient::new(crate::memory().await).await.unwrap();
    let e = untrusting
        .get(&format!("https://localhost:{port}/other"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    server_task.abort();
}
