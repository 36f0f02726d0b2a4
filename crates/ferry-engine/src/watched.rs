//! A statement that never returns is found, without killing one that is
//! merely long.
//!
//! A server that freezes (a paused VM, a hung storage volume, a stopped
//! process) or a network that drops packets without a reset leaves a
//! statement waiting for ever: the connection is open, nothing arrives. A
//! fixed statement timeout would find it, and would also kill a legitimate
//! index build or a keyset scan under a selective filter. So every statement
//! is watched instead: each time it has run for `every`, Ferry asks the server
//! on a connection of its own whether it still answers
//! ([`crate::Health::answers`]). A server that answers is waited for; one that does
//! not is a lost connection ([`ErrorKind::ConnectionLost`]), which the
//! commands that reconnect (`run`, `sync`, `verify`) survive.

use crate::{
    CaptureLag, CaptureScope, Catalog, Change, ChangeCapture, Checkpoint, Ddl, Durability, Engine, EngineError,
    EngineKind, ErrorKind, Health, KeyRange, LockGuard, Locks, RangeChecksum, ReadSpec, Reader, ReplicaLag, Result,
    Rows, SchemaSupport, WriteSpec, Writer,
};
use async_trait::async_trait;
use ferry_core::{
    CaptureMethod, ColumnDependent, DataType, Dependents, ExpressionIndex, ForeignKey, Row, TableDef, TableName,
};
use ferry_core::{TableSchema, Value};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// An engine whose every statement is watched (see the module).
pub struct Watched {
    inner: Arc<dyn Engine>,
    every: Duration,
}

impl Watched {
    /// Wraps `inner`; a zero `every` watches nothing.
    pub fn new(inner: Arc<dyn Engine>, every: Duration) -> Watched {
        Watched { inner, every }
    }

    async fn watch<T>(&self, statement: impl Future<Output = Result<T>>) -> Result<T> {
        if self.every.is_zero() {
            return statement.await;
        }
        tokio::pin!(statement);
        loop {
            tokio::select! {
                done = &mut statement => return done,
                _ = tokio::time::sleep(self.every) => {
                    if let Err(e) = self.inner.answers().await {
                        return Err(self.silent(e));
                    }
                }
            }
        }
    }

    fn silent(&self, cause: EngineError) -> EngineError {
        EngineError::new(
            ErrorKind::ConnectionLost,
            format!(
                "{} stopped answering: a statement ran for {:?} and the server did not answer a connection of \
                 its own ({})",
                self.inner.display_url(),
                self.every,
                cause.message()
            ),
        )
        .with_hint(
            "check the server and the network; Ferry reconnects for up to [policy] reconnect_for, and \
             [policy] liveness_check sets how long a statement runs before the server is asked",
        )
    }
}

#[async_trait]
impl Catalog for Watched {
    fn kind(&self) -> EngineKind {
        self.inner.kind()
    }

    fn capabilities(&self) -> crate::Capabilities {
        self.inner.capabilities()
    }

    fn plan_dialect(&self) -> &'static dyn ferry_core::PlanDialect {
        self.inner.plan_dialect()
    }

    fn sql_dialect(&self) -> crate::sql::Dialect {
        self.inner.sql_dialect()
    }

    fn display_url(&self) -> String {
        self.inner.display_url()
    }

    async fn missing_privileges(&self, needs: &[crate::Need]) -> Result<Vec<String>> {
        self.watch(self.inner.missing_privileges(needs)).await
    }

    async fn introspect(&self, table: &TableName) -> Result<TableSchema> {
        self.watch(self.inner.introspect(table)).await
    }

    async fn table_exists(&self, table: &TableName) -> Result<bool> {
        self.watch(self.inner.table_exists(table)).await
    }

    async fn column_dependents(&self, table: &TableName, columns: &[String]) -> Result<Vec<ColumnDependent>> {
        self.watch(self.inner.column_dependents(table, columns)).await
    }

    async fn code_dependents(&self, table: &TableName, columns: &[String]) -> Result<Vec<ColumnDependent>> {
        self.watch(self.inner.code_dependents(table, columns)).await
    }

    async fn dependents(&self, table: &TableName) -> Result<Dependents> {
        self.watch(self.inner.dependents(table)).await
    }

    async fn version(&self) -> Result<String> {
        self.watch(self.inner.version()).await
    }

    async fn free_disk_bytes(&self) -> Result<Option<u64>> {
        self.watch(self.inner.free_disk_bytes()).await
    }

    fn collation_pads(&self, collation: &str) -> bool {
        self.inner.collation_pads(collation)
    }

    fn zero_date_conditions(&self, column: &str, native_type: &str) -> Option<crate::ZeroDateConditions> {
        self.inner.zero_date_conditions(column, native_type)
    }

    async fn namespace(&self) -> Result<Option<String>> {
        self.watch(self.inner.namespace()).await
    }

    async fn transport(&self) -> Result<ferry_core::Transport> {
        self.watch(self.inner.transport()).await
    }

    async fn expression_type(&self, table: &TableName, sql: &str) -> Result<Option<DataType>> {
        self.watch(self.inner.expression_type(table, sql)).await
    }

    fn storage_type(&self, t: &DataType, in_key_or_index: bool) -> DataType {
        self.inner.storage_type(t, in_key_or_index)
    }

    fn schema_support(&self) -> SchemaSupport {
        self.inner.schema_support()
    }

    async fn count(&self, table: &TableName, filter: Option<&str>) -> Result<u64> {
        self.watch(self.inner.count(table, filter)).await
    }
}

#[async_trait]
impl Ddl for Watched {
    async fn drop_scratch_table(&self, table: &TableName) -> Result<()> {
        self.watch(self.inner.drop_scratch_table(table)).await
    }

    async fn create_table(&self, def: &TableDef) -> Result<()> {
        self.watch(self.inner.create_table(def)).await
    }

    async fn create_index(&self, table: &TableName, columns: &[String], unique: bool) -> Result<()> {
        self.watch(self.inner.create_index(table, columns, unique)).await
    }

    fn table_ddl(&self, def: &TableDef) -> (Vec<String>, Vec<String>) {
        self.inner.table_ddl(def)
    }

    async fn add_foreign_key(&self, table: &TableName, fk: &ForeignKey) -> Result<()> {
        self.watch(self.inner.add_foreign_key(table, fk)).await
    }

    async fn create_expression_index(&self, table: &TableName, index: &ExpressionIndex) -> Result<()> {
        self.watch(self.inner.create_expression_index(table, index)).await
    }

    async fn set_identity_next(&self, table: &TableName, column: &str, next: i64) -> Result<()> {
        self.watch(self.inner.set_identity_next(table, column, next)).await
    }

    fn identity_sql(&self, table: &TableName, column: &str, next: &str) -> Vec<String> {
        self.inner.identity_sql(table, column, next)
    }

    async fn install_fence(&self, table: &TableName, message: &str, lock_timeout: Duration) -> Result<()> {
        self.watch(self.inner.install_fence(table, message, lock_timeout)).await
    }

    async fn remove_fence(&self, table: &TableName, lock_timeout: Duration) -> Result<()> {
        self.watch(self.inner.remove_fence(table, lock_timeout)).await
    }

    async fn rename_table(&self, from: &TableName, to: &TableName) -> Result<()> {
        self.watch(self.inner.rename_table(from, to)).await
    }

    async fn backup(&self, tables: &[TableName], dir: &Path) -> Result<PathBuf> {
        self.watch(self.inner.backup(tables, dir)).await
    }

    fn scratch_name(&self, purpose: &str) -> String {
        self.inner.scratch_name(purpose)
    }

    async fn create_scratch_database(&self, name: &str) -> Result<Arc<dyn Engine>> {
        self.watch(self.inner.create_scratch_database(name)).await
    }

    async fn drop_scratch_database(&self, name: &str) -> Result<()> {
        self.watch(self.inner.drop_scratch_database(name)).await
    }

    async fn restore_scratch(&self, dump: &Path, name: &str) -> Result<Arc<dyn Engine>> {
        self.watch(self.inner.restore_scratch(dump, name)).await
    }

    async fn execute(&self, statements: &[String], atomic: bool, lock_timeout: Duration) -> Result<u64> {
        self.watch(self.inner.execute(statements, atomic, lock_timeout)).await
    }

    async fn drop_table(&self, table: &TableName) -> Result<()> {
        self.watch(self.inner.drop_table(table)).await
    }
}

#[async_trait]
impl Reader for Watched {
    async fn identity_next(&self, table: &TableName, column: &str) -> Result<Option<i64>> {
        self.watch(self.inner.identity_next(table, column)).await
    }

    async fn read_batch(&self, read: &ReadSpec, after: Option<&[Value]>, limit: usize) -> Result<Vec<Row>> {
        self.watch(self.inner.read_batch(read, after, limit)).await
    }

    async fn read_range(&self, read: &ReadSpec, range: &KeyRange, offset: usize, limit: usize) -> Result<Vec<Row>> {
        self.watch(self.inner.read_range(read, range, offset, limit)).await
    }

    async fn key_bounds(&self, read: &ReadSpec) -> Result<Option<(Value, Value)>> {
        self.watch(self.inner.key_bounds(read)).await
    }

    async fn checksum_range(&self, read: &ReadSpec, range: &KeyRange) -> Result<Option<RangeChecksum>> {
        self.watch(self.inner.checksum_range(read, range)).await
    }

    async fn read_keys(&self, read: &ReadSpec, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        self.watch(self.inner.read_keys(read, keys)).await
    }

    async fn scalar(&self, sql: &str) -> Result<Option<String>> {
        self.watch(self.inner.scalar(sql)).await
    }

    async fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        self.watch(self.inner.query_text(sql)).await
    }
}

#[async_trait]
impl Writer for Watched {
    async fn upsert(&self, write: &WriteSpec, rows: Rows) -> Result<()> {
        self.watch(self.inner.upsert(write, rows)).await
    }

    async fn upsert_checkpointed(
        &self,
        write: &WriteSpec,
        rows: Rows,
        checkpoint: &Checkpoint,
        durability: Durability,
    ) -> Result<()> {
        self.watch(self.inner.upsert_checkpointed(write, rows, checkpoint, durability)).await
    }

    async fn delete_keys(&self, write: &WriteSpec, keys: &[Vec<Value>]) -> Result<()> {
        self.watch(self.inner.delete_keys(write, keys)).await
    }

    async fn delete_all(&self, table: &TableName) -> Result<()> {
        self.watch(self.inner.delete_all(table)).await
    }
}

#[async_trait]
impl ChangeCapture for Watched {
    fn capture_methods(&self) -> &'static [CaptureMethod] {
        self.inner.capture_methods()
    }

    fn capture_scope(&self) -> CaptureScope {
        self.inner.capture_scope()
    }

    fn set_capture_scope(&self, scope: CaptureScope) {
        self.inner.set_capture_scope(scope)
    }

    async fn check_capture(&self, method: CaptureMethod) -> Result<()> {
        self.watch(self.inner.check_capture(method)).await
    }

    async fn install_capture(
        &self,
        table: &TableSchema,
        key: &[String],
        method: CaptureMethod,
        lock_timeout: Duration,
    ) -> Result<()> {
        self.watch(self.inner.install_capture(table, key, method, lock_timeout)).await
    }

    async fn remove_capture(&self, table: &TableName, lock_timeout: Duration) -> Result<()> {
        self.watch(self.inner.remove_capture(table, lock_timeout)).await
    }

    async fn collect_changes(&self) -> Result<()> {
        self.watch(self.inner.collect_changes()).await
    }

    async fn read_changes(&self, table: &TableName, key_width: usize, limit: usize) -> Result<Vec<Change>> {
        self.watch(self.inner.read_changes(table, key_width, limit)).await
    }

    async fn ack_changes(&self, table: &TableName, seqs: &[i64]) -> Result<()> {
        self.watch(self.inner.ack_changes(table, seqs)).await
    }

    async fn capture_lag(&self, table: &TableName) -> Result<CaptureLag> {
        self.watch(self.inner.capture_lag(table)).await
    }

    async fn capture_retained_bytes(&self) -> Result<Option<u64>> {
        self.watch(self.inner.capture_retained_bytes()).await
    }
}

#[async_trait]
impl Health for Watched {
    async fn answers(&self) -> Result<()> {
        self.inner.answers().await
    }

    /// Watched like this one.
    async fn connect_again(&self) -> Result<Arc<dyn Engine>> {
        Ok(Arc::new(Watched::new(self.watch(self.inner.connect_again()).await?, self.every)))
    }

    async fn probe(&self, sql: &str) -> Result<()> {
        self.watch(self.inner.probe(sql)).await
    }

    async fn replica_lag(&self) -> Result<Option<ReplicaLag>> {
        self.watch(self.inner.replica_lag()).await
    }

    async fn active_sessions(&self) -> Result<Option<u64>> {
        self.watch(self.inner.active_sessions()).await
    }

    async fn rows_changed(&self, table: &TableName) -> Result<Option<u64>> {
        self.watch(self.inner.rows_changed(table)).await
    }
}

#[async_trait]
impl Locks for Watched {
    async fn try_lock(&self, name: &str) -> Result<Option<LockGuard>> {
        self.watch(self.inner.try_lock(name)).await
    }
}
