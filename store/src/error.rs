//! The error type of the store crate, with the distinction every caller needs: transient
//! failures (the database is down or restarting) are retried by the source (SMTP 451, MTA
//! exit 75, IMAP leaves the message), permanent ones are not.

use dmarcpipe_ingest::IngestError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// The input itself could not be read (before any content was seen).
    #[error("{0}")]
    Input(#[from] IngestError),

    /// The blocking ingest task panicked or was cancelled.
    #[error("ingest task failed: {0}")]
    Task(String),

    /// Sealing or opening a sample failed (bad keys, a damaged payload, a wrong identity).
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),

    /// A stored value that the code cannot interpret (a bug or a hand-edited row).
    #[error("unexpected data in the database: {0}")]
    Data(String),

    /// The database did not answer in time: frozen, or gone without closing the connection.
    #[error("the database did not answer within {} seconds", .0.as_secs())]
    Timeout(std::time::Duration),

    /// The database's schema is not the one this build knows (newer, changed or broken):
    /// no command works on it until that is resolved.
    #[error("the database schema does not match this dmarcpipe: {0}")]
    Schema(String),

    /// The error of a batch, given to each of its inputs.
    #[error("{message}")]
    Shared { message: String, transient: bool },
}

impl StoreError {
    /// True when retrying later can succeed: connection failures, server shutdown or
    /// overload, serialization failures and deadlocks.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(err) => is_transient_sqlx(err),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(err)) => is_transient_sqlx(err),
            StoreError::Input(err) => err.is_transient(),
            StoreError::Task(_) | StoreError::Timeout(_) => true,
            StoreError::Shared { transient, .. } => *transient,
            _ => false,
        }
    }

    /// True when a number did not fit its type (SQLSTATE 22003): a `bigint` sum past 64 bits,
    /// which the rollups then add up again as exact `numeric` sums, and compaction holds back.
    pub(crate) fn is_out_of_range(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("22003"))
    }

    /// This error again, for another input that met it (as text, keeping whether it is
    /// transient).
    pub(crate) fn shared(&self) -> StoreError {
        StoreError::Shared { message: self.to_string(), transient: self.is_transient() }
    }
}

fn is_transient_sqlx(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "40001" | "40P01")
        }),
        _ => false,
    }
}
