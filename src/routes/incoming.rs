//! What every route reads from a request before its body: the request id, the runtime it will
//! be answered with, the key the caller presented (in any dialect's header) and the caller's
//! address (behind a trusted proxy, the one it forwarded), and the server's state it reaches
//! past them. Admission itself is the core's (`answer::admission`); this is where its inputs
//! come from, and the first steps every route takes with them (admit, reach the library, read a
//! JSON body).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;

use super::REQUEST_ID;
use crate::access_log::Record;
use crate::answer::admission::{self, Caller};
use crate::error::ApiError;
use crate::state::{AppState, Runtime};
use crate::videos::Library;
use serde::de::DeserializeOwned;

pub struct Incoming {
    pub request_id: String,
    pub runtime: Arc<Runtime>,
    state: AppState,
    key: Option<String>,
    ip: Option<IpAddr>,
}

impl Incoming {
    /// The request's log line, labelled with `persona` (see `Record::label_persona`).
    pub fn record(&self, dialect: &'static str, persona: &str) -> Record {
        let mut record = Record::new(self.request_id.clone(), "unknown", dialect);
        record.label_persona(&self.runtime.config, persona);
        record
    }

    /// Admits the caller of a route that does not answer with an upstream.
    pub async fn admit(&self) -> Result<Caller, ApiError> {
        self.admit_as(None).await
    }

    /// Admits the caller of a route that answers: with replicas, its shared stream place and
    /// its request id's past failure come in the same round trip as its rate limits.
    pub async fn admit_to_answer(&self) -> Result<Caller, ApiError> {
        self.admit_as(Some(&self.request_id)).await
    }

    /// The server's state, for what a route reaches past admission (the library, the core).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The video library (absent when `videos.enabled` is off).
    pub fn library(&self) -> Result<&Library, ApiError> {
        self.state.library()
    }

    /// What a library route does first: admit the caller, then reach the library.
    pub async fn admit_to_library(&self) -> Result<(Caller, &Library), ApiError> {
        let caller = self.admit().await?;
        Ok((caller, self.library()?))
    }

    /// `admit_to_library`, for a route whose body is JSON of the shape `shape` (named in the
    /// error when it is not). A refused caller's body is never read.
    pub async fn admit_with_json<T: DeserializeOwned>(
        &self,
        request: Request,
        shape: &str,
    ) -> Result<(Caller, &Library, T), ApiError> {
        let (caller, bytes) = super::body::admitted(self, request).await?;
        Ok((caller, self.library()?, super::body::json(&bytes, shape)?))
    }

    async fn admit_as(&self, answering: Option<&str>) -> Result<Caller, ApiError> {
        admission::admit(
            self.runtime.clone(),
            self.state.cluster(),
            self.key.as_deref(),
            self.ip,
            answering,
        )
        .await
    }
}

impl FromRequestParts<AppState> for Incoming {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let runtime = state.runtime();
        let request_id = parts
            .headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        // Present when served through `crate::serve`; absent under a bare router (tests, embedding).
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| runtime.rate_limits.caller_ip(addr.ip(), &parts.headers));
        let key = crate::auth::presented_key(&parts.headers).map(str::to_string);
        Ok(Self {
            request_id,
            runtime,
            state: state.clone(),
            key,
            ip,
        })
    }
}
