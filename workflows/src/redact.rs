//! Redaction rules shared by telemetry and logs (reference §1.6).

/// Redacts a provider id to `"..."` + its last 4 characters; shorter ids become
/// `"...redacted"`. Provider ids are secret-grade and never logged raw.
pub fn redact_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if id.len() >= 4 && chars.len() >= 4 {
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("...{tail}")
    } else {
        "...redacted".to_owned()
    }
}

/// A reason safe for telemetry: an atom-like name (`[a-z0-9_]`) passes unchanged,
/// anything else is cut to 200 characters.
pub fn safe_reason(reason: &str) -> String {
    let atom_like = !reason.is_empty()
        && reason.len() <= 255
        && reason
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if atom_like {
        reason.to_owned()
    } else {
        reason.chars().take(200).collect()
    }
}

/// A URL without its query string or fragment (signatures live there), for logs.
pub fn strip_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_only_their_last_four_characters() {
        assert_eq!(redact_id("AbCd1234EfGh5678IjKl9012MnOp3456QrSt"), "...QrSt");
        assert_eq!(redact_id("abcd"), "...abcd");
        assert_eq!(redact_id("abc"), "...redacted");
        assert_eq!(redact_id(""), "...redacted");
    }

    #[test]
    fn atoms_pass_and_other_reasons_are_cut_to_200() {
        assert_eq!(safe_reason("provider_rejected"), "provider_rejected");
        let long = "x".repeat(300) + " with spaces";
        assert_eq!(safe_reason(&long).chars().count(), 200);
        assert_eq!(safe_reason("Mux said: no"), "Mux said: no");
    }

    #[test]
    fn query_strings_are_dropped() {
        assert_eq!(
            strip_query("https://h/p/a.mp4?X-Amz-Signature=abc"),
            "https://h/p/a.mp4"
        );
        assert_eq!(strip_query("https://h/p"), "https://h/p");
    }
}
