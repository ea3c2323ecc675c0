//! The RASR WebSocket endpoints (`/v1/{project_id}/rasr/{mode}`). This version
//! authenticates and upgrades the connection; recognition over it is not
//! implemented yet, and every START gets an ERROR saying so.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path};
use axum::response::{IntoResponse, Response};
use sis_protocol::{ApiError, SisCode};

use crate::errors::ErrorResponse;
use crate::server::RequestId;

pub const MODES: [&str; 3] = ["short-stream", "continue-stream", "sentence-stream"];

pub async fn upgrade(
    Extension(rid): Extension<RequestId>,
    Path((_project_id, mode)): Path<(String, String)>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if !MODES.contains(&mode.as_str()) {
        return ErrorResponse {
            error: ApiError::new(
                SisCode::ApiNotFound,
                "The API does not exist or has not been published in the environment.",
            ),
            request_id: rid.0,
        }
        .into_response();
    }
    match ws {
        Ok(ws) => ws.on_upgrade(session).into_response(),
        Err(_) => ErrorResponse {
            error: ApiError::invalid("a WebSocket upgrade request is required"),
            request_id: rid.0,
        }
        .into_response(),
    }
}

async fn session(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        match msg {
            Message::Text(_) => {
                let body = serde_json::json!({
                    "resp_type": "ERROR",
                    "trace_id": uuid::Uuid::new_v4().to_string(),
                    "error_code": SisCode::Unsupported.as_str(),
                    "error_msg": "real-time recognition is not available in this version",
                });
                if socket
                    .send(Message::Text(body.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
}
