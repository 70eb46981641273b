//! `GET /v1/models` and `GET /v1/models/{id}`: the personas, as OpenAI lists models, so clients
//! that pick a model from the list (Open WebUI, LiteLLM's discovery) find them.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error_response;
use crate::error::ApiError;
use crate::routes::incoming::Incoming;

fn model(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "chatapi"})
}

pub async fn list(incoming: Incoming) -> Response {
    match incoming.admit().await {
        Ok(caller) => {
            let data: Vec<Value> = caller
                .runtime
                .config
                .personas
                .keys()
                .map(|id| model(id))
                .collect();
            Json(json!({"object": "list", "data": data})).into_response()
        }
        Err(error) => error_response(&error),
    }
}

pub async fn get(incoming: Incoming, Path(id): Path<String>) -> Response {
    let caller = match incoming.admit().await {
        Ok(caller) => caller,
        Err(error) => return error_response(&error),
    };
    if caller.runtime.config.personas.contains_key(&id) {
        Json(model(&id)).into_response()
    } else {
        error_response(&ApiError::UnknownPersona(id))
    }
}
