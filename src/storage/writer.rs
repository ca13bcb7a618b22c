//! SQLite's writer: the one connection every write of this server goes through. A write is a
//! batch of statements that opens and commits its own transaction (`storage::batch`), run through
//! rusqlite with its statements prepared once.
//!
//! A small write runs in place, on the caller's thread, when the connection is free and no write
//! is queued: it costs SQLite less than handing it to another thread and back (two wake-ups). The rest queue, in order, for the writer
//! thread: large writes (so no async worker is held for milliseconds), writes that find the
//! connection taken, and writes that find the database locked by another process (in place a
//! write never waits for a lock; the thread waits up to the busy timeout).
//!
//! A queued write runs to its end once the thread has begun it, even if its caller stops
//! waiting, so it is all or nothing either way; one whose caller is gone before it begins is
//! skipped.
//!
//! The thread also keeps the write-ahead log bounded (`wal`): a write that finds the log past its
//! bound queues a checkpoint behind it.

use std::{
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, TryLockError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use rusqlite::{
    Connection, ErrorCode, OpenFlags,
    types::{FromSql, Value},
};
use tokio::sync::oneshot;

use super::{StorageError, wal::WalBound};

/// The statements every SQLite connection starts with.
pub(super) const PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
];
/// As `PRAGMAS` sets it, for the writer thread.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Inputs up to this size run in place: a few dozen entities, short enough for an async worker.
const IN_PLACE_INPUT_MAX: usize = 2048;

/// Every statement of every batch stays prepared (the six batches share eight; ~20 in all).
const STATEMENT_CACHE: usize = 96;

/// A row a batch returned, its values as SQLite gave them.
pub struct Row(Vec<Value>);

impl Row {
    pub fn get<T: FromSql>(&self, column: usize) -> rusqlite::Result<T> {
        let value = self.0.get(column).ok_or(rusqlite::Error::InvalidColumnIndex(column))?;
        T::column_result(value.into())
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, value.data_type(), Box::new(e)))
    }
}

pub(super) type Batch = &'static [&'static str];

struct Job {
    statements: Batch,
    tenant: String,
    input: String,
    /// Past this, a write still queued fails as unavailable (DB_TIMEOUT), as it would waiting
    /// for a pooled connection.
    deadline: Instant,
    reply: oneshot::Sender<Outcome>,
}

/// What the thread is sent: a write, or a checkpoint of the log.
enum Work {
    Write(Job),
    Checkpoint,
}

enum Outcome {
    Rows(rusqlite::Result<Vec<Row>>),
    TimedOut,
}

/// The connection, opened by the first write (and again after a failure not of the write's
/// making), shared by the writes in place and the thread.
struct Shared {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
    /// Writes sent to the thread and not yet answered; none may be overtaken in place.
    queued: AtomicUsize,
    closed: AtomicBool,
    wal: WalBound,
}

pub struct SqliteWriter {
    timeout: Duration,
    shared: Arc<Shared>,
    jobs: Mutex<Option<mpsc::Sender<Work>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SqliteWriter {
    /// Starts the writer thread for the database file at `path`, its log bounded to
    /// `wal_max_bytes`.
    pub fn new(path: &Path, timeout: Duration, wal_max_bytes: u64) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            conn: Mutex::default(),
            queued: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            wal: WalBound::new(path, wal_max_bytes),
        });
        let (jobs, queue) = mpsc::channel();
        let for_thread = shared.clone();
        let thread =
            std::thread::Builder::new().name("sqlite-writer".into()).spawn(move || serve(&for_thread, queue))?;
        Ok(SqliteWriter { timeout, shared, jobs: Mutex::new(Some(jobs)), thread: Mutex::new(Some(thread)) })
    }

    /// Runs one batch with the write's two parameters ($1 the tenant, $2 the input) and returns
    /// the rows its statements gave, in order. On error nothing of it stays.
    pub async fn run(&self, statements: Batch, tenant: &str, input: String) -> Result<Vec<Row>, StorageError> {
        let rows = self.write(statements, tenant, input).await;
        if rows.is_ok() && self.shared.wal.claim_checkpoint() {
            let sent = self.jobs.lock().expect("writer queue").as_ref().map(|jobs| jobs.send(Work::Checkpoint));
            if !matches!(sent, Some(Ok(()))) {
                self.shared.wal.release();
            }
        }
        rows
    }

    async fn write(&self, statements: Batch, tenant: &str, input: String) -> Result<Vec<Row>, StorageError> {
        if input.len() <= IN_PLACE_INPUT_MAX
            && let Some(done) = self.try_in_place(statements, tenant, &input)
        {
            return Ok(done?);
        }
        let (reply, answer) = oneshot::channel();
        let job = Job { statements, tenant: tenant.to_owned(), input, deadline: Instant::now() + self.timeout, reply };
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        let sent = self.jobs.lock().expect("writer queue").as_ref().map(|jobs| jobs.send(Work::Write(job)));
        if !matches!(sent, Some(Ok(()))) {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(StorageError::Closed); // closed, or the thread is gone
        }
        match answer.await {
            Ok(Outcome::Rows(rows)) => Ok(rows?),
            Ok(Outcome::TimedOut) => Err(StorageError::TimedOut(self.timeout)),
            Err(_) => Err(StorageError::Closed),
        }
    }

    /// The batch's outcome, or `None` when it cannot run at once without waiting (the connection
    /// is taken, a write is queued, or another process holds the database's write lock).
    fn try_in_place(&self, statements: Batch, tenant: &str, input: &str) -> Option<rusqlite::Result<Vec<Row>>> {
        if self.shared.queued.load(Ordering::SeqCst) > 0 || self.shared.closed.load(Ordering::SeqCst) {
            return None;
        }
        let mut conn = self.shared.try_lock()?;
        let outcome = self.shared.with_connection(&mut conn, Duration::ZERO, |c| run(c, statements, tenant, input));
        match &outcome {
            // Rolled back: nothing of it stays, and the thread will wait for the lock.
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => None,
            _ => Some(outcome),
        }
    }

    /// Lets the writes already queued finish, then closes the connection.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.jobs.lock().expect("writer queue").take();
        let thread = self.thread.lock().expect("writer thread").take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.shared.lock().take();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Option<Connection>> {
        self.conn.lock().unwrap_or_else(|poisoned| self.recover(poisoned.into_inner()))
    }

    /// The connection if it is free now.
    fn try_lock(&self) -> Option<MutexGuard<'_, Option<Connection>>> {
        match self.conn.try_lock() {
            Ok(conn) => Some(conn),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Poisoned(poisoned)) => Some(self.recover(poisoned.into_inner())),
        }
    }

    /// A write panicked while it held the connection, perhaps inside its transaction: the
    /// connection is dropped (SQLite rolls back what it left open) and the next write opens one.
    fn recover<'a>(&self, mut conn: MutexGuard<'a, Option<Connection>>) -> MutexGuard<'a, Option<Connection>> {
        *conn = None;
        self.conn.clear_poison();
        conn
    }

    /// Runs `write` on the connection (opened first if need be), waiting at most `busy` for
    /// another process's lock. Any failure but a refused write (a constraint) or a lock drops the
    /// connection: the next write starts from a fresh one.
    fn with_connection<T>(
        &self,
        conn: &mut Option<Connection>,
        busy: Duration,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        if conn.is_none() {
            *conn = Some(connect(&self.path, &self.wal)?);
        }
        let open = conn.as_ref().expect("opened above");
        let outcome = open.busy_timeout(busy).and_then(|()| write(open));
        if let Err(error) = &outcome
            && !matches!(
                error.sqlite_error_code(),
                Some(ErrorCode::ConstraintViolation | ErrorCode::DatabaseBusy) | None
            )
        {
            tracing::debug!(%error, "SQLite writer reconnects");
            *conn = None;
        }
        outcome
    }
}

fn serve(shared: &Shared, queue: mpsc::Receiver<Work>) {
    while let Ok(work) = queue.recv() {
        let job = match work {
            Work::Write(job) => job,
            Work::Checkpoint => {
                let mut conn = shared.lock();
                let checkpoint = |c: &Connection| shared.wal.checkpoint(c);
                if let Err(error) = shared.with_connection(&mut conn, super::wal::CHECKPOINT_WAIT, checkpoint) {
                    shared.wal.release();
                    tracing::warn!(%error, "SQLite WAL checkpoint failed");
                }
                continue;
            }
        };
        // A write that panics fails alone (its caller's channel closes); the thread goes on.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if job.reply.is_closed() {
                None // nobody waits for it: not begun, nothing written
            } else if Instant::now() > job.deadline {
                Some(Outcome::TimedOut)
            } else {
                let mut conn = shared.lock();
                let write = |c: &Connection| run(c, job.statements, &job.tenant, &job.input);
                Some(Outcome::Rows(shared.with_connection(&mut conn, BUSY_TIMEOUT, write)))
            }
        }));
        shared.queued.fetch_sub(1, Ordering::SeqCst);
        if let Ok(Some(outcome)) = outcome {
            let _ = job.reply.send(outcome);
        }
    }
}

/// The temporary table (one per writer connection) that carries the largest entity id from
/// before an insert to the statement after it, which adds the observations of the new entities.
const WRITE_MARK_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS write_mark (id INTEGER NOT NULL)";

fn connect(path: &Path, wal: &WalBound) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    for statement in PRAGMAS.iter().chain([&WRITE_MARK_TABLE]) {
        conn.execute_batch(statement)?;
    }
    conn.execute_batch(&wal.size_limit_pragma())?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// One batch; on error the transaction it opened is rolled back.
fn run(conn: &Connection, statements: Batch, tenant: &str, input: &str) -> rusqlite::Result<Vec<Row>> {
    let result = run_statements(conn, statements, tenant, input);
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

fn run_statements(conn: &Connection, statements: Batch, tenant: &str, input: &str) -> rusqlite::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for sql in statements {
        let mut statement = conn.prepare_cached(sql)?;
        for index in 1..=statement.parameter_count() {
            match statement.parameter_name(index) {
                Some("$1") => statement.raw_bind_parameter(index, tenant)?,
                Some("$2") => statement.raw_bind_parameter(index, input)?,
                other => return Err(rusqlite::Error::InvalidParameterName(other.unwrap_or("?").to_owned())),
            }
        }
        let columns = statement.column_count();
        let mut results = statement.raw_query();
        while let Some(row) = results.next()? {
            rows.push(Row((0..columns).map(|i| row.get::<_, Value>(i)).collect::<rusqlite::Result<_>>()?));
        }
    }
    Ok(rows)
}
