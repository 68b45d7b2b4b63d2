//! Per-test databases: a fresh PostgreSQL schema or a fresh SQLite file, each removed on `Drop`.
//!
//! PostgreSQL is found at `RINDLE_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). If it is unreachable the test panics: a
//! conformance test that silently skips its production backend proves nothing.

use rindle_activities::store::Store;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// Where the tests find PostgreSQL unless `RINDLE_TEST_DATABASE_URL` says otherwise.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// One test's database, owned by the test and cleaned up when dropped.
pub struct TestDatabase {
    /// The store under test.
    pub store: Store,
    backend: Backend,
}

enum Backend {
    Postgres {
        url: String,
        schema: String,
    },
    Sqlite {
        url: String,
        _dir: tempfile::TempDir,
    },
}

impl TestDatabase {
    /// A fresh, migrated schema `rt_<uuid>` in the test PostgreSQL.
    pub async fn postgres() -> TestDatabase {
        let db = Self::postgres_unmigrated().await;
        db.store.migrate().await.expect("migrate the test schema");
        db
    }

    /// A store on a schema `rt_<uuid>` that does not exist yet (for migration tests).
    pub async fn postgres_unmigrated() -> TestDatabase {
        let url = std::env::var("RINDLE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned());
        let schema = format!("rt_{}", Uuid::new_v4().simple());
        let pool = PgPoolOptions::new()
            // Tests run in parallel against one server; a small pool per test keeps the total
            // under PostgreSQL's default max_connections while still allowing real races.
            .max_connections(5)
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is unreachable at {} ({e}). Start it or set RINDLE_TEST_DATABASE_URL; \
                     the store tests never skip.",
                    without_password(&url)
                )
            });
        let store = Store::from_pg_pool(pool, &schema).expect("valid schema name");
        TestDatabase {
            store,
            backend: Backend::Postgres { url, schema },
        }
    }

    /// A fresh, migrated SQLite file in its own temporary directory.
    pub async fn sqlite() -> TestDatabase {
        let db = Self::sqlite_unmigrated().await;
        db.store.migrate().await.expect("migrate the test database");
        db
    }

    /// A store on an empty SQLite file (for migration tests).
    pub async fn sqlite_unmigrated() -> TestDatabase {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("rindle.db").display());
        let store = Store::connect(&url, "main")
            .await
            .expect("open the SQLite file");
        TestDatabase {
            store,
            backend: Backend::Sqlite { url, _dir: dir },
        }
    }

    /// The database URL, to point a worker process at the same database.
    pub fn url(&self) -> String {
        match &self.backend {
            Backend::Postgres { url, .. } | Backend::Sqlite { url, .. } => url.clone(),
        }
    }

    /// The schema holding the tables (`main` for SQLite, where it is ignored).
    pub fn schema(&self) -> String {
        match &self.backend {
            Backend::Postgres { schema, .. } => schema.clone(),
            Backend::Sqlite { .. } => "main".to_owned(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // The SQLite directory removes itself; a PostgreSQL schema must be dropped. Drop cannot
        // be async and may run inside the test's runtime, so do it on a thread of its own with a
        // fresh connection.
        let Backend::Postgres { url, schema } = &self.backend else {
            return;
        };
        let (url, schema) = (url.clone(), schema.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&url).await?;
                // A test that panicked mid-transaction may still hold locks in the schema:
                // give up (and warn) rather than hang the test run.
                sqlx::raw_sql("SET lock_timeout = '5s'")
                    .execute(&mut conn)
                    .await?;
                sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                anyhow::Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test schema: {e:#}"),
            Err(_) => eprintln!("warning: the thread dropping the test schema panicked"),
        }
    }
}

/// The URL with its password (if any) masked, for messages.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
