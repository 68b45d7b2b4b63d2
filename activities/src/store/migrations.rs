//! The versioned schema steps both backends apply, in order, each recorded once in
//! `rindle_ingest_schema_migrations`.
//!
//! Step 1 creates Rindle's tables only if absent (an adopter running Rindle already has them,
//! and we never alter them) and then our own `rindle_ingest_` tables. A later change to our
//! tables is a new step appended here; a step that has shipped is never edited.

/// One schema step, in both dialects. PostgreSQL text names tables as `{schema}.table`;
/// the backend substitutes the validated, quoted schema.
pub(super) struct Step {
    /// Recorded in `rindle_ingest_schema_migrations.version`; strictly increasing.
    pub(super) version: i32,
    /// PostgreSQL DDL (several statements, run as one batch inside the migration transaction).
    pub(super) postgres: &'static str,
    /// SQLite DDL (same tables and columns; uuids, arrays, jsonb and timestamps as TEXT).
    pub(super) sqlite: &'static str,
}

/// Every step, oldest first.
pub(super) const STEPS: &[Step] = &[Step {
    version: 1,
    postgres: include_str!("sql/postgres/0001_tables.sql"),
    sqlite: include_str!("sql/sqlite/0001_tables.sql"),
}];

/// The placeholder the PostgreSQL steps use for the schema.
pub(super) const SCHEMA_PLACEHOLDER: &str = "{schema}";

/// The steps not yet in `applied`, oldest first.
pub(super) fn pending(applied: &[i32]) -> impl Iterator<Item = &'static Step> + '_ {
    STEPS.iter().filter(|step| !applied.contains(&step.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_strictly_increase() {
        assert!(STEPS.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(pending(&[1]).count(), STEPS.len() - 1);
    }
}
