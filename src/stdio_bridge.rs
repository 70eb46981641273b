//! `chatapi mcp --stdio`: MCP over this process's stdin and stdout, for clients that only start
//! local processes, relayed message by message to a running chatapi's `/mcp` with a key. Both
//! ends are the SDK's own transports (`rmcp`: stdio on one side, its Streamable HTTP client on
//! the other), so sessions, progress and cancellation pass through as the protocol has them;
//! nothing here reads a message. The server does all the work: this process holds no library,
//! no model and no config.

use rmcp::model::JsonRpcMessage;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{IntoTransport, StreamableHttpClientTransport, Transport};
use rmcp::{ErrorData, RoleClient, RoleServer};

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("{0} is not an http(s) URL of a chatapi's /mcp")]
    Url(String),
    #[error("could not send to {url}: {message}")]
    Remote { url: String, message: String },
    #[error("could not write to stdout: {0}")]
    Local(String),
}

/// Relays until either side closes: the client ends its stdin, or the server ends the session.
pub async fn run(url: &str, key: Option<&str>) -> Result<(), BridgeError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(BridgeError::Url(url.to_string()));
    }
    // reqwest's TLS with ring, the provider the rest of the binary already carries; a second
    // install (none here) would only be refused, which changes nothing.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        config = config.auth_header(key);
    }
    let connect = move || StreamableHttpClientTransport::from_config(config.clone());
    let mut local = IntoTransport::<RoleServer, _, _>::into_transport(rmcp::transport::stdio());
    relay(&mut local, connect, url).await
}

/// Passes messages both ways. A message the server refused (a wrong key, a server down) is
/// answered to the client with the reason, and the next one goes through a fresh connection,
/// so the client hears why instead of seeing this process vanish, and a restarted server is
/// reached again.
async fn relay<R: Transport<RoleClient>>(
    local: &mut impl Transport<RoleServer>,
    connect: impl Fn() -> R,
    url: &str,
) -> Result<(), BridgeError> {
    let mut remote = connect();
    let outcome = loop {
        tokio::select! {
            message = local.receive() => {
                let Some(message) = message else { break Ok(()) };
                let id = match &message {
                    JsonRpcMessage::Request(request) => Some(request.id.clone()),
                    _ => None,
                };
                if let Err(e) = remote.send(message).await {
                    let error = BridgeError::Remote { url: url.to_string(), message: e.to_string() };
                    tracing::warn!(%error, "mcp bridge");
                    let _ = remote.close().await;
                    remote = connect();
                    if let Some(id) = id {
                        let reply = JsonRpcMessage::error(ErrorData::internal_error(error.to_string(), None), Some(id));
                        if let Err(e) = local.send(reply).await {
                            break Err(BridgeError::Local(e.to_string()));
                        }
                    }
                }
            }
            message = remote.receive() => {
                let Some(message) = message else { break Ok(()) };
                if let Err(e) = local.send(message).await {
                    break Err(BridgeError::Local(e.to_string()));
                }
            }
        }
    };
    let _ = remote.close().await;
    let _ = local.close().await;
    outcome
}
