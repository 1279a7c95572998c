//! tower: a layer that verifies each request's Bearer token before the
//! service behind it sees the request (axum, hyper, tonic over HTTP). An
//! accepted request carries the token's [`Claims`] in its extensions; a
//! refused one is answered here, with the service's body, status and
//! RFC 6750 challenge.
//!
//! ```no_run
//! # async fn build(verifier: jwt_blocklist_verifier::Verifier) {
//! use jwt_blocklist_verifier::tower::VerifyLayer;
//! use tower_layer::Layer;
//!
//! // Any tower service whose response body can be made from a String
//! // (axum's Body, http-body-util's Full<Bytes>, ...).
//! let app = tower::service_fn(|request: http::Request<String>| async move {
//!     let claims = request.extensions().get::<jwt_blocklist_verifier::Claims>().cloned();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(format!("hello {}", claims.unwrap().username)))
//! });
//! let guarded = VerifyLayer::new(verifier).layer(app);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Verifier, VerifyError};

/// Wraps a service in [`Verify`].
#[derive(Clone)]
pub struct VerifyLayer {
    verifier: Verifier,
}

impl VerifyLayer {
    pub fn new(verifier: Verifier) -> Self {
        VerifyLayer { verifier }
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = Verify<S>;

    fn layer(&self, inner: S) -> Verify<S> {
        Verify { verifier: self.verifier.clone(), inner }
    }
}

/// A service whose requests must carry an accepted access token.
#[derive(Clone)]
pub struct Verify<S> {
    verifier: Verifier,
    inner: S,
}

/// The answer to a refused request.
pub fn refusal<B: From<String>>(error: &VerifyError) -> Response<B> {
    let mut response = Response::new(B::from(error.body().to_string()));
    *response.status_mut() = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(challenge) = error.www_authenticate().and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Verify<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was made ready goes with this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            match verifier.verify_header(authorization).await {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(error) => Ok(refusal(&error)),
            }
        })
    }
}
