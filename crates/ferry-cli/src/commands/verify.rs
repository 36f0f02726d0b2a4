use crate::output::{print_reports, Reporter};
use crate::{EXIT_DIFFERENCES, EXIT_OK};
use ferry_run::Migration;
use std::path::Path;

pub async fn run(spec_path: &Path) -> anyhow::Result<u8> {
    let spec = super::load_spec(spec_path)?;
    // Read-only on both databases: no lock, it may run beside `ferry run`.
    let migration = Migration::open(spec, false).await?;
    let reports = migration.verify(&Reporter::new()).await?;
    print_reports(&reports);
    Ok(if reports.iter().all(|r| r.passed()) { EXIT_OK } else { EXIT_DIFFERENCES })
}
