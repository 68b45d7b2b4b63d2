//! What goes over the wire: the create-asset request body and the asset shapes we read back.
//!
//! Responses are read from a `serde_json::Value` by hand instead of through `#[derive(Deserialize)]`
//! because serde's messages quote the offending input, and that input can be an asset id or a
//! signed URL; the hand-written checks here name only the field that was wrong.

use std::fmt;

use rindle_workflows::redact::{redact_id, strip_query};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::error::MuxError;

/// Mux's answer to a create is `preparing` until the input has been fetched and transcoded.
const STATUS_PREPARING: &str = "preparing";

/// One `POST /video/v1/assets`: the signed source URL and the options Rindle sends.
///
/// The URL is a bearer credential (anyone holding it can read the file until it expires), so it is
/// kept in a [`SecretString`] and `Debug` prints it without its query string.
#[derive(Clone)]
pub struct CreateAssetRequest {
    /// The signed URL Mux fetches the video from.
    pub input_url: SecretString,
    /// `signed` or `public`; sent as the single entry of `playback_policies`.
    pub playback_policy: String,
    /// Sent as `mp4_support`; Rindle sends `standard`.
    pub mp4_support: String,
    /// Sent as `max_resolution_tier`; Rindle sends `1080p`.
    pub max_resolution_tier: String,
    /// Sent as `passthrough` only when present, so that an asset can be matched back to its row.
    pub passthrough: Option<String>,
}

impl CreateAssetRequest {
    /// A request with Rindle's defaults (`mp4_support: standard`, `max_resolution_tier: 1080p`,
    /// no passthrough), because those are what the reference worker sends.
    pub fn new(input_url: SecretString, playback_policy: impl Into<String>) -> Self {
        Self {
            input_url,
            playback_policy: playback_policy.into(),
            mp4_support: "standard".to_owned(),
            max_resolution_tier: "1080p".to_owned(),
            passthrough: None,
        }
    }

    /// The JSON body of the POST: plural `inputs` / `playback_policies` (the singular keys are
    /// deprecated by Mux), `passthrough` only when set.
    pub(crate) fn to_body(&self) -> Value {
        let mut body = json!({
            "inputs": [{ "url": self.input_url.expose_secret() }],
            "playback_policies": [self.playback_policy],
            "mp4_support": self.mp4_support,
            "max_resolution_tier": self.max_resolution_tier,
        });
        if let (Some(passthrough), Some(obj)) = (&self.passthrough, body.as_object_mut()) {
            obj.insert("passthrough".to_owned(), Value::String(passthrough.clone()));
        }
        body
    }
}

impl fmt::Debug for CreateAssetRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateAssetRequest")
            .field("input_url", &strip_query(self.input_url.expose_secret()))
            .field("playback_policy", &self.playback_policy)
            .field("mp4_support", &self.mp4_support)
            .field("max_resolution_tier", &self.max_resolution_tier)
            .field("passthrough", &self.passthrough)
            .finish()
    }
}

/// What a create returns that Rindle keeps: the asset id and its playback ids, persisted at
/// create time because Mux returns them there when a policy is given.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedAsset {
    /// The Mux asset id (redacted in `Debug`).
    pub id: String,
    /// Playback ids only; their policies are dropped, as Rindle stores a string array.
    pub playback_ids: Vec<String>,
    /// Mux's status string, normally `preparing`.
    pub status: String,
}

impl fmt::Debug for CreatedAsset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedAsset")
            .field("id", &redact_id(&self.id))
            .field("playback_ids", &self.playback_ids)
            .field("status", &self.status)
            .finish()
    }
}

/// Mux's asset status. Mux documents only `preparing | ready | errored`; anything else is kept
/// verbatim in [`MuxAssetStatus::Other`] so that a new status is visible rather than an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MuxAssetStatus {
    /// Mux is fetching or transcoding the input.
    Preparing,
    /// Playable.
    Ready,
    /// Mux gave up on the input; see [`MuxAsset::errors`].
    Errored,
    /// A status Mux did not document (for example `deleted` in webhooks).
    Other(String),
}

impl MuxAssetStatus {
    /// Maps Mux's status string, because the workflow branches on these three cases.
    pub fn parse(status: &str) -> Self {
        match status {
            STATUS_PREPARING => Self::Preparing,
            "ready" => Self::Ready,
            "errored" => Self::Errored,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Mux's own spelling, for logs and for the row.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Preparing => STATUS_PREPARING,
            Self::Ready => "ready",
            Self::Errored => "errored",
            Self::Other(s) => s,
        }
    }
}

/// One asset as `GET /video/v1/assets/{id}` (or the list) reports it: what the polling backstop
/// and the reconciliation need.
#[derive(Clone, PartialEq, Eq)]
pub struct MuxAsset {
    /// The Mux asset id (redacted in `Debug`).
    pub id: String,
    /// Where Mux is with this asset.
    pub status: MuxAssetStatus,
    /// Playback ids only (policies dropped).
    pub playback_ids: Vec<String>,
    /// `data.errors.messages`, each cut to 500 characters; empty unless errored.
    pub errors: Vec<String>,
    /// The passthrough sent at create, which ties the asset back to its row.
    pub passthrough: Option<String>,
}

impl fmt::Debug for MuxAsset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxAsset")
            .field("id", &redact_id(&self.id))
            .field("status", &self.status)
            .field("playback_ids", &self.playback_ids)
            .field("errors", &self.errors)
            .field("passthrough", &self.passthrough)
            .finish()
    }
}

/// The result of a delete, named because a 404 is success for an idempotent delete but worth
/// telling apart in logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Mux deleted the asset now.
    Deleted,
    /// Mux did not know the asset (404): deleted earlier, or never created.
    AlreadyGone,
}

/// One page of `GET /video/v1/assets`, for sweeps that adopt assets by passthrough.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetPage {
    /// The assets of this page, in Mux's order.
    pub assets: Vec<MuxAsset>,
    /// Pass to the next call to continue; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Cut a provider message to `max` characters, because Mux bodies end up in errors and logs.
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// Longest provider message kept, so that an HTML error page cannot flood an error string.
pub(crate) const MAX_MESSAGE_CHARS: usize = 500;

/// `data` of a 2xx body, because every Mux response wraps its object in it.
pub(crate) fn unwrap_data<'a>(body: &'a Value, what: &'static str) -> Result<&'a Value, MuxError> {
    body.get("data").ok_or_else(|| MuxError::Decode {
        what,
        detail: "no `data` field in the response body".to_owned(),
    })
}

fn object<'a>(value: &'a Value, what: &'static str) -> Result<&'a Map<String, Value>, MuxError> {
    value.as_object().ok_or_else(|| MuxError::Decode {
        what,
        detail: format!("`data` is a JSON {}, not an object", kind_of(value)),
    })
}

fn required_str(
    obj: &Map<String, Value>,
    field: &'static str,
    what: &'static str,
) -> Result<String, MuxError> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(other) => Err(MuxError::Decode {
            what,
            detail: format!(
                "`data.{field}` is a JSON {}, not a non-empty string",
                kind_of(other)
            ),
        }),
        None => Err(MuxError::Decode {
            what,
            detail: format!("`data.{field}` is missing"),
        }),
    }
}

/// The JSON type name of a value, so decode errors can say what was wrong without quoting it.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(s) if s.is_empty() => "empty string",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Playback ids from `playback_ids`: `{"id": …}` objects give their id, bare strings are kept, other
/// items are dropped; `null`, missing or a non-list give `[]` (Mux sends `null` before any exists).
pub fn extract_playback_ids(value: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(items)) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::String(id) => Some(id.clone()),
            Value::Object(obj) => obj.get("id").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// `errors.messages` of an asset: the reason Mux gives for `errored`.
fn extract_error_messages(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(|errors| errors.get("messages"))
        .and_then(Value::as_array)
        .map(|messages| {
            messages
                .iter()
                .filter_map(Value::as_str)
                .map(|m| cut(m, MAX_MESSAGE_CHARS))
                .collect()
        })
        .unwrap_or_default()
}

/// A create's `data`: `id` is required, `playback_ids` may be absent (no policy given).
pub(crate) fn parse_created(data: &Value) -> Result<CreatedAsset, MuxError> {
    const WHAT: &str = "create-asset response";
    let obj = object(data, WHAT)?;
    let id = required_str(obj, "id", WHAT)?;
    let status = obj
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or(STATUS_PREPARING)
        .to_owned();
    Ok(CreatedAsset {
        id,
        playback_ids: extract_playback_ids(obj.get("playback_ids")),
        status,
    })
}

/// An asset object from get or list: `id` and `status` are required, as the reference requires.
pub(crate) fn parse_asset(data: &Value, what: &'static str) -> Result<MuxAsset, MuxError> {
    let obj = object(data, what)?;
    let id = required_str(obj, "id", what)?;
    let status = MuxAssetStatus::parse(&required_str(obj, "status", what)?);
    Ok(MuxAsset {
        id,
        status,
        playback_ids: extract_playback_ids(obj.get("playback_ids")),
        errors: extract_error_messages(obj.get("errors")),
        passthrough: obj
            .get("passthrough")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// A list body: `{"data": [asset…], "next_cursor": "…" | null}`.
pub(crate) fn parse_page(body: &Value) -> Result<AssetPage, MuxError> {
    const WHAT: &str = "list-assets response";
    let data = unwrap_data(body, WHAT)?;
    let items = data.as_array().ok_or_else(|| MuxError::Decode {
        what: WHAT,
        detail: format!("`data` is a JSON {}, not an array", kind_of(data)),
    })?;
    let assets = items
        .iter()
        .map(|item| parse_asset(item, WHAT))
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = body
        .get("next_cursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    Ok(AssetPage {
        assets,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_uses_plural_keys_and_omits_absent_passthrough() {
        let req = CreateAssetRequest::new(
            SecretString::from("https://s.example/v.mp4?sig=abc"),
            "signed",
        );
        assert_eq!(
            req.to_body(),
            json!({
                "inputs": [{"url": "https://s.example/v.mp4?sig=abc"}],
                "playback_policies": ["signed"],
                "mp4_support": "standard",
                "max_resolution_tier": "1080p"
            })
        );
        let with = CreateAssetRequest {
            passthrough: Some("rndl:1:2".to_owned()),
            ..req
        };
        assert_eq!(with.to_body()["passthrough"], "rndl:1:2");
    }

    #[test]
    fn debug_hides_the_signature_and_the_id() {
        let req = CreateAssetRequest::new(
            SecretString::from("https://s.example/v.mp4?sig=abc"),
            "signed",
        );
        let dbg = format!("{req:?}");
        assert!(dbg.contains("https://s.example/v.mp4"));
        assert!(!dbg.contains("sig=abc"));

        let created = CreatedAsset {
            id: "AbCd1234EfGh5678IjKl9012MnOp3456QrSt".to_owned(),
            playback_ids: vec![],
            status: "preparing".to_owned(),
        };
        let dbg = format!("{created:?}");
        assert!(dbg.contains("...QrSt") && !dbg.contains("AbCd1234"));
    }

    #[test]
    fn playback_ids_accept_objects_and_strings_and_drop_the_rest() {
        let v = json!([{"id": "a", "policy": "signed"}, "b", 3, {"policy": "public"}, null]);
        assert_eq!(extract_playback_ids(Some(&v)), ["a", "b"]);
        assert!(extract_playback_ids(Some(&Value::Null)).is_empty());
        assert!(extract_playback_ids(None).is_empty());
        assert!(extract_playback_ids(Some(&json!({"id": "x"}))).is_empty());
    }

    #[test]
    fn assets_need_an_id_and_a_status() {
        let ok = json!({"id": "abcd1234", "status": "errored", "passthrough": "p",
                        "errors": {"type": "input_error", "messages": ["bad input"]}});
        let asset = parse_asset(&ok, "t").unwrap();
        assert_eq!(asset.status, MuxAssetStatus::Errored);
        assert_eq!(asset.errors, ["bad input"]);
        assert_eq!(asset.passthrough.as_deref(), Some("p"));

        let no_status = json!({"id": "secret-id-1234"});
        let err = parse_asset(&no_status, "t").unwrap_err();
        assert!(matches!(err, MuxError::Decode { .. }));
        assert!(!err.to_string().contains("secret-id"));
        assert!(parse_asset(&json!([]), "t").is_err());
        assert_eq!(
            MuxAssetStatus::parse("deleted"),
            MuxAssetStatus::Other("deleted".to_owned())
        );
    }

    #[test]
    fn created_asset_without_playback_ids_has_none() {
        let created = parse_created(&json!({"id": "abcd1234"})).unwrap();
        assert!(created.playback_ids.is_empty());
        assert_eq!(created.status, "preparing");
    }

    #[test]
    fn pages_carry_the_cursor_only_when_non_empty() {
        let body = json!({"data": [{"id": "a1234", "status": "ready"}], "next_cursor": ""});
        let page = parse_page(&body).unwrap();
        assert_eq!(page.assets.len(), 1);
        assert_eq!(page.next_cursor, None);
        let body = json!({"data": [], "next_cursor": "c2"});
        assert_eq!(
            parse_page(&body).unwrap().next_cursor.as_deref(),
            Some("c2")
        );
        assert!(parse_page(&json!({"data": {}})).is_err());
    }
}
