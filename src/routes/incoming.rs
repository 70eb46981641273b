//! What every route reads from a request before its body: the request id, the runtime it will
//! be answered with, the key the caller presented (in any dialect's header) and the caller's
//! address (behind a trusted proxy, the one it forwarded). Admission itself is the core's
//! (`answer::admission`); this is only where its inputs come from.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use super::REQUEST_ID;
use crate::access_log::Record;
use crate::answer::admission::{self, Caller};
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::state::{AppState, Runtime};

pub struct Incoming {
    pub request_id: String,
    pub runtime: Arc<Runtime>,
    cluster: Cluster,
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

    async fn admit_as(&self, answering: Option<&str>) -> Result<Caller, ApiError> {
        admission::admit(
            self.runtime.clone(),
            &self.cluster,
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
            cluster: state.cluster().clone(),
            key,
            ip,
        })
    }
}
