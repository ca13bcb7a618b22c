//! The JSON-RPC errors rmcp does not give: a message it cannot read gets -32700 (not JSON) or
//! -32600 (not a JSON-RPC 2.0 request) carrying the request's id whenever that id is usable, and a
//! standard method whose params do not fit gets -32602 naming the field instead of -32601. Used by
//! both transports: rmcp answers the first kind with HTTP 415 and a text body over HTTP, and over
//! stdio with no reply (non-JSON) or an error without an id.

use std::fmt;

// The conformance suite still exercises logging/setLevel.
#[allow(deprecated)]
use rmcp::{
    ErrorData as McpError,
    model::{
        CallToolRequestParams, CompleteRequestParams, GetPromptRequestParams, InitializeRequestParams,
        PaginatedRequestParams, ReadResourceRequestParams, SetLevelRequestParams, SubscribeRequestParams,
        UnsubscribeRequestParams,
    },
};
use serde::{
    Deserialize, Deserializer,
    de::{DeserializeOwned, MapAccess, Visitor},
};
use serde_json::{Value, json};

pub const PARSE_ERROR: i32 = -32700;
pub const INVALID_REQUEST: i32 = -32600;

/// Why a message was refused: the JSON-RPC error reply and whether the message was a request at
/// all (a notification-shaped message gets no reply over stdio).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The request's id when it is usable (a string or an integer), else null.
    pub id: Value,
    pub code: i32,
    pub message: String,
    /// It had a string `method` and no `id`: a notification, which is never answered.
    pub notification: bool,
}

impl Rejection {
    fn new(id: Value, code: i32, message: impl Into<String>) -> Self {
        Rejection { id, code, message: message.into(), notification: false }
    }

    /// The whole JSON-RPC error message.
    pub fn to_json(&self) -> Value {
        json!({ "jsonrpc": "2.0", "id": self.id, "error": { "code": self.code, "message": self.message } })
    }
}

/// An object's members in order, duplicates kept (serde_json's `Value` keeps only the last).
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

fn usable_id(id: &Value) -> bool {
    id.is_string() || id.as_i64().is_some()
}

/// Explains why `bytes` is not a message rmcp accepts. Meant for what rmcp already refused: a
/// message it would accept still gets a generic -32600, never `Ok`.
pub fn reject(bytes: &[u8]) -> Rejection {
    let rejection = classify(bytes);
    metrics::counter!("mcp_invalid_requests_total", "code" => rejection.code.to_string()).increment(1);
    tracing::debug!(code = rejection.code, reason = %rejection.message, "invalid JSON-RPC message");
    rejection
}

fn classify(bytes: &[u8]) -> Rejection {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => return Rejection::new(Value::Null, PARSE_ERROR, format!("Parse error: {e}")),
    };
    let members = match value {
        Value::Object(_) => match serde_json::from_slice::<Members>(bytes) {
            Ok(Members(members)) => members,
            Err(e) => return Rejection::new(Value::Null, PARSE_ERROR, format!("Parse error: {e}")),
        },
        Value::Array(_) => {
            return Rejection::new(Value::Null, INVALID_REQUEST, "Invalid Request: batches are not supported");
        }
        _ => return Rejection::new(Value::Null, INVALID_REQUEST, "Invalid Request: a message is a JSON object"),
    };
    let get = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let duplicate = members.iter().enumerate().find(|(i, (k, _))| members[..*i].iter().any(|(seen, _)| seen == k));
    // An id given twice is not usable: which one would the reply carry?
    let id_twice = duplicate.is_some_and(|(_, (k, _))| k == "id");
    let id = get("id").filter(|id| usable_id(id) && !id_twice).cloned().unwrap_or(Value::Null);
    let method = get("method");
    let notification = get("id").is_none() && method.is_some_and(Value::is_string);
    let reason = |message: String| Rejection { notification, ..Rejection::new(id.clone(), INVALID_REQUEST, message) };
    if let Some((_, (name, _))) = duplicate {
        return reason(format!("Invalid Request: member `{name}` appears twice"));
    }
    if get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return reason("Invalid Request: `jsonrpc` must be \"2.0\"".into());
    }
    if let Some(given) = get("id")
        && !usable_id(given)
    {
        return reason("Invalid Request: `id` must be a string or an integer".into());
    }
    match method {
        Some(Value::String(_)) => {}
        Some(_) => return reason("Invalid Request: `method` must be a string".into()),
        None if get("result").is_some() || get("error").is_some() => {
            return reason("Invalid Request: not a valid JSON-RPC response".into());
        }
        None => return reason("Invalid Request: `method` is missing".into()),
    }
    if get("params").is_some_and(|p| !p.is_object()) {
        return reason("Invalid Request: `params` must be an object".into());
    }
    reason("Invalid Request".into())
}

/// The error for a standard method whose params rmcp could not read (it passes such a request on
/// as a custom one): -32602 naming the field, else `None` (not a method this server knows).
pub fn invalid_params(method: &str, params: Option<Value>) -> Option<McpError> {
    let error = match method {
        "tools/call" => params_error::<CallToolRequestParams>(params),
        "resources/read" => params_error::<ReadResourceRequestParams>(params),
        "resources/subscribe" => params_error::<SubscribeRequestParams>(params),
        "resources/unsubscribe" => params_error::<UnsubscribeRequestParams>(params),
        "prompts/get" => params_error::<GetPromptRequestParams>(params),
        "completion/complete" => params_error::<CompleteRequestParams>(params),
        #[allow(deprecated)]
        "logging/setLevel" => params_error::<SetLevelRequestParams>(params),
        "initialize" => params_error::<InitializeRequestParams>(params),
        "tools/list" | "resources/list" | "resources/templates/list" | "prompts/list" => {
            params_error::<PaginatedRequestParams>(params)
        }
        "ping" | "server/discover" | "subscriptions/listen" => {
            McpError::invalid_params(format!("Invalid params for {method}"), None)
        }
        _ => return None,
    };
    metrics::counter!("mcp_invalid_requests_total", "code" => "-32602").increment(1);
    // The field, not the message: serde quotes the bad value, which is the caller's data.
    let field = error.data.as_ref().and_then(|d| d["field"].as_str()).unwrap_or_default();
    tracing::debug!(method, field, "invalid params");
    Some(error)
}

fn params_error<T: DeserializeOwned>(params: Option<Value>) -> McpError {
    let value = params.unwrap_or_else(|| Value::Object(Default::default()));
    match serde_path_to_error::deserialize::<_, T>(value) {
        Err(e) => invalid_field("Invalid params", e),
        Ok(_) => McpError::invalid_params("Invalid params", None),
    }
}

/// -32602 whose message and `data.field` name the offending field (`entities[0].name: …`).
pub fn invalid_field(what: &str, e: serde_path_to_error::Error<serde_json::Error>) -> McpError {
    let path = e.path().to_string();
    let inner = e.into_inner().to_string();
    // serde names a missing field in its message; a type error gets the path.
    let field = match inner.strip_prefix("missing field `") {
        Some(rest) => rest.split('`').next().unwrap_or_default().to_string(),
        None => path.clone(),
    };
    let message = if path == "." { inner } else { format!("{path}: {inner}") };
    McpError::invalid_params(format!("{what}: {message}"), Some(json!({ "field": field })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_and_id(body: &str) -> (i32, Value) {
        let r = classify(body.as_bytes());
        (r.code, r.id)
    }

    #[test]
    fn each_defect_gets_its_code_and_keeps_a_usable_id() {
        assert_eq!(code_and_id("garbage"), (PARSE_ERROR, Value::Null));
        assert_eq!(code_and_id(r#"{"jsonrpc":"2.0","id":7,"method":"x","params":{"s":"\ud800"}}"#).0, PARSE_ERROR);
        assert_eq!(code_and_id(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#), (INVALID_REQUEST, Value::Null));
        assert_eq!(code_and_id(r#""hello""#), (INVALID_REQUEST, Value::Null));
        assert_eq!(code_and_id(r#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#), (INVALID_REQUEST, json!(4)));
        assert_eq!(code_and_id(r#"{"id":"a","method":"ping"}"#), (INVALID_REQUEST, json!("a")));
        assert_eq!(code_and_id(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#), (INVALID_REQUEST, Value::Null));
        assert_eq!(code_and_id(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#), (INVALID_REQUEST, Value::Null));
        assert_eq!(code_and_id(r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#), (INVALID_REQUEST, Value::Null));
        assert_eq!(code_and_id(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#), (INVALID_REQUEST, Value::Null));
        let twice = classify(br#"{"jsonrpc":"2.0","id":3,"method":"a","method":"b"}"#);
        assert_eq!((twice.id, twice.message.contains("`method`")), (json!(3), true));
        assert!(classify(br#"{"method":"notifications/x"}"#).notification);
        assert!(!classify(br#"{"id":1,"method":"ping"}"#).notification);
    }

    #[test]
    fn tools_call_params_name_the_field() {
        let field = |params: Value| invalid_params("tools/call", Some(params)).unwrap().data.unwrap()["field"].clone();
        assert_eq!(field(json!({ "arguments": {} })), "name");
        assert_eq!(field(json!({ "name": 5 })), "name");
        assert_eq!(field(json!({ "name": "read_graph", "arguments": [] })), "arguments");
        assert!(invalid_params("no/such", None).is_none());
    }
}
