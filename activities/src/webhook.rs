//! Mux webhooks: signature verification over the raw body, and the envelope → `ProviderEvent`.
//!
//! `mux-signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, where each `v1` is
//! HMAC-SHA256(secret, "{t}.{raw body}") in lowercase hex. Any configured secret may match
//! (rotation); the timestamp must be within the tolerance in the past *and* the future.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;

use rindle_proto::ProviderEvent;

/// Why a delivery was not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No webhook secret is configured, so nothing can be verified.
    #[error("no webhook secrets configured")]
    NoSecrets,
    /// The `mux-signature` header is absent.
    #[error("missing mux-signature header")]
    MissingHeader,
    /// The header is not `t=…,v1=…`.
    #[error("malformed mux-signature header")]
    Malformed,
    /// The timestamp is older than the tolerance.
    #[error("signature timestamp too old")]
    Stale,
    /// The timestamp is further in the future than the tolerance.
    #[error("signature timestamp in the future")]
    Future,
    /// No `v1` value matches any secret.
    #[error("signature mismatch")]
    Mismatch,
}

impl SignatureError {
    /// Atom-like name for telemetry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSecrets => "no_secrets",
            Self::MissingHeader => "missing_signature",
            Self::Malformed => "malformed_signature",
            Self::Stale => "stale_timestamp",
            Self::Future => "future_timestamp",
            Self::Mismatch => "signature_mismatch",
        }
    }
}

/// Verifies `header` for `body`; returns the index of the secret that matched.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
    tolerance: Duration,
    now: SystemTime,
) -> Result<usize, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecrets);
    }
    let header = header.ok_or(SignatureError::MissingHeader)?;
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = Some(v),
            Some(("v1", v)) => {
                signatures.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?)
            }
            Some(_) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    let seconds: u64 = t.parse().map_err(|_| SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let signed_at = UNIX_EPOCH + Duration::from_secs(seconds);
    match now.duration_since(signed_at) {
        Ok(age) if age > tolerance => return Err(SignatureError::Stale),
        Err(ahead) if ahead.duration() > tolerance => return Err(SignatureError::Future),
        _ => {}
    }
    for (index, secret) in secrets.iter().enumerate() {
        for sig in &signatures {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
                .expect("HMAC accepts keys of any length");
            mac.update(t.as_bytes());
            mac.update(b".");
            mac.update(body);
            // Constant-time comparison.
            if mac.verify_slice(sig).is_ok() {
                return Ok(index);
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// Computes the `mux-signature` header value Mux would send (tests and the simulator).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A verified body that is not a usable Mux event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not an object of the expected shape.
    #[error("webhook body is not a Mux event: {0}")]
    Invalid(String),
    /// No `id`.
    #[error("webhook event has no id")]
    MissingEventId,
}

/// A parsed Mux event and the correlation data we route by.
#[derive(Debug, Clone, PartialEq)]
pub struct MuxEvent {
    /// The event as our signal payload.
    pub event: ProviderEvent,
    /// `data.passthrough` (we stamp `rndl:{row_id}` on every asset we create).
    pub passthrough: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    object: Option<ObjectRef>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ObjectRef {
    #[serde(default)]
    id: Option<String>,
}

/// Parses a verified body into a [`MuxEvent`]. Thin payloads (no `data`) are accepted.
pub fn parse_event(body: &[u8]) -> Result<MuxEvent, EnvelopeError> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::Invalid(e.to_string()))?;
    let event_id = env
        .id
        .filter(|id| !id.is_empty())
        .ok_or(EnvelopeError::MissingEventId)?;
    let data = env.data.unwrap_or(serde_json::Value::Null);
    let asset_id = data["id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| env.object.and_then(|o| o.id))
        .unwrap_or_default();
    let playback_ids = data["playback_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|p| p["id"].as_str().or_else(|| p.as_str()).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let error_messages = data["errors"]["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(MuxEvent {
        event: ProviderEvent {
            event_id,
            r#type: env.kind,
            provider_asset_id: asset_id,
            playback_ids,
            error_messages,
            occurred_at: env.created_at.unwrap_or_default(),
        },
        passthrough: data["passthrough"].as_str().map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"type":"video.asset.ready","id":"evt-1","created_at":"2026-05-06T00:00:00.000Z","object":{"type":"asset","id":"A1"},"data":{"id":"A1","status":"ready","playback_ids":[{"id":"pb1","policy":"signed"}],"passthrough":"rndl:x"}}"#;

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter()
            .map(|s| SecretString::from(s.to_string()))
            .collect()
    }

    fn at(t: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(t)
    }

    const TOL: Duration = Duration::from_secs(300);

    #[test]
    fn a_signature_from_any_configured_secret_verifies() {
        let header = sign("new-secret", 1_000_000, BODY);
        assert_eq!(
            verify(
                Some(&header),
                BODY,
                &secrets(&["old", "new-secret"]),
                TOL,
                at(1_000_010)
            ),
            Ok(1)
        );
    }

    #[test]
    fn several_v1_values_are_allowed() {
        let good = sign("s", 1_000_000, BODY);
        let v1 = good.split_once("v1=").unwrap().1;
        let header = format!("t=1000000,v1={},v1={v1}", "00".repeat(32));
        assert_eq!(
            verify(Some(&header), BODY, &secrets(&["s"]), TOL, at(1_000_000)),
            Ok(0)
        );
    }

    #[test]
    fn tampered_bodies_stale_and_future_timestamps_are_rejected() {
        let header = sign("s", 1_000_000, BODY);
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        let s = secrets(&["s"]);
        assert_eq!(
            verify(Some(&header), &tampered, &s, TOL, at(1_000_000)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header), BODY, &s, TOL, at(1_000_301)),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&header), BODY, &s, TOL, at(999_699)),
            Err(SignatureError::Future)
        );
        assert_eq!(verify(Some(&header), BODY, &s, TOL, at(1_000_300)), Ok(0));
        assert_eq!(
            verify(None, BODY, &s, TOL, at(1_000_000)),
            Err(SignatureError::MissingHeader)
        );
        assert_eq!(
            verify(Some("garbage"), BODY, &s, TOL, at(1_000_000)),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(&header), BODY, &[], TOL, at(1_000_000)),
            Err(SignatureError::NoSecrets)
        );
    }

    #[test]
    fn the_envelope_becomes_a_provider_event() {
        let e = parse_event(BODY).unwrap();
        assert_eq!(e.event.event_id, "evt-1");
        assert_eq!(e.event.provider_asset_id, "A1");
        assert_eq!(e.event.playback_ids, vec!["pb1"]);
        assert_eq!(e.passthrough.as_deref(), Some("rndl:x"));
        assert_eq!(
            parse_event(br#"{"type":"video.asset.ready"}"#),
            Err(EnvelopeError::MissingEventId)
        );
        assert!(matches!(
            parse_event(b"nope"),
            Err(EnvelopeError::Invalid(_))
        ));
    }

    #[test]
    fn the_fixtures_parse() {
        let errored =
            include_bytes!("../../../shared/fixtures/mux/webhook_video_asset_errored.json");
        let e = parse_event(errored).unwrap();
        assert_eq!(
            e.event.error_messages,
            vec!["Failed to fetch input from signed URL"]
        );
    }
}
