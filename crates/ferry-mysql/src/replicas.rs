//! Replica lag as MySQL/MariaDB can tell it. A primary does not know how far
//! behind its replicas are, so Ferry lists the replicas connected to it
//! (`SHOW SLAVE HOSTS`, or `SHOW REPLICAS` on MySQL 8.4, where each replica
//! registers its host and port) and asks each for its own `SHOW REPLICA
//! STATUS`, with the source's user and password — the way
//! pt-online-schema-change finds replicas.
//!
//! A replica Ferry cannot reach or ask is left out with a warning: replicas
//! often live where the migration host cannot connect, and a migration must
//! not wait forever for one it will never see.

use ferry_engine::ReplicaLag;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value as MyValue};
use std::time::Duration;

/// The text of a column by name, if the row has it and it is not NULL.
fn column(row: &Row, names: &[&str]) -> Option<String> {
    let columns = row.columns_ref();
    let i = columns.iter().position(|c| names.iter().any(|n| c.name_str().eq_ignore_ascii_case(n)))?;
    match row.as_ref(i)? {
        MyValue::NULL => None,
        MyValue::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        MyValue::Int(v) => Some(v.to_string()),
        MyValue::UInt(v) => Some(v.to_string()),
        other => Some(other.as_sql(true)),
    }
}

/// Runs the first of `queries` the server accepts (newer and older spellings).
async fn first_accepted(conn: &mut Conn, queries: &[&str]) -> Option<Vec<Row>> {
    for q in queries {
        if let Ok(rows) = conn.query::<Row, _>(*q).await {
            return Some(rows);
        }
    }
    None
}

/// The replicas connected to the primary, as (host, port).
pub async fn list(primary: &mut Conn) -> Vec<(String, u16)> {
    let Some(rows) = first_accepted(primary, &["SHOW SLAVE HOSTS", "SHOW REPLICAS"]).await else {
        tracing::debug!("the source does not list its replicas (no privilege, or not a primary)");
        return Vec::new();
    };
    rows.iter()
        .filter_map(|r| {
            let host = column(r, &["Host"]).filter(|h| !h.is_empty())?;
            let port = column(r, &["Port"])?.parse().ok()?;
            Some((host, port))
        })
        .collect()
}

/// How far one replica is behind, asked on the replica itself; Err says why
/// it could not be asked. Ok(None): it shows no replication channel.
pub async fn lag_of(base: &Opts, host: &str, port: u16) -> Result<Option<ReplicaLag>, String> {
    let replica = format!("{host}:{port}");
    let opts = OptsBuilder::from_opts(base.clone()).ip_or_hostname(host.to_string()).tcp_port(port);
    let mut conn = match tokio::time::timeout(Duration::from_secs(3), Conn::new(opts)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(format!("replica {replica} cannot be asked for its lag: {e}")),
        Err(_) => return Err(format!("replica {replica} cannot be asked for its lag: no connection within 3 s")),
    };
    // Bounded too: a replica that accepts connections but does not answer
    // must not hold the migration.
    let asked = tokio::time::timeout(
        Duration::from_secs(3),
        first_accepted(&mut conn, &["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"]),
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.disconnect()).await;
    let rows = match asked {
        Ok(Some(rows)) => rows,
        Ok(None) => return Err(format!("replica {replica} does not show its replication status to this user")),
        Err(_) => return Err(format!("replica {replica} did not show its replication status within 3 s")),
    };
    // One row per replication channel (multi-source); NULL seconds means a
    // stopped or broken channel.
    rows.iter()
        .map(|r| ReplicaLag {
            replica: replica.clone(),
            seconds: column(r, &["Seconds_Behind_Master", "Seconds_Behind_Source"]).and_then(|s| s.parse().ok()),
        })
        .reduce(ReplicaLag::worst)
        .map_or(Ok(None), |lag| Ok(Some(lag)))
}
