//! Every neutral type, created by each engine, introspects back as the type
//! the engine says it stores (`Engine::storage_type`): what expand creates is
//! what verification and a later migration will read.

use ferry_core::{ColumnDef, DataType, TableDef, TableName};
use ferry_testkit::{Kind, TestDb, ALL};

async fn round_trip(kind: Kind) {
    let db = TestDb::new(kind).await;
    let engine = db.engine().await;
    let examples = DataType::examples();
    let mut columns = vec![ColumnDef::new("id", DataType::Int64, false)];
    columns.extend(examples.iter().enumerate().map(|(i, t)| ColumnDef::new(format!("c{i}"), t.clone(), true)));
    let def = TableDef::new(TableName::parse("typed"), columns, vec!["id".into()]);
    let planned: Vec<DataType> = examples.iter().map(|t| engine.storage_type(t, false)).collect();
    let def = TableDef {
        columns: def
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| ColumnDef {
                data_type: if i == 0 { c.data_type.clone() } else { planned[i - 1].clone() },
                ..c.clone()
            })
            .collect(),
        ..def
    };
    engine.create_table(&def).await.expect("create");
    let schema = engine.introspect(&TableName::parse("typed")).await.expect("introspect");
    for (i, want) in planned.iter().enumerate() {
        let col = schema.column(&format!("c{i}")).unwrap();
        assert_eq!(
            &col.data_type, want,
            "{kind}: {} was created as {} and reads back as {}",
            examples[i], col.native_type, col.data_type
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_reads_back_as_created() {
    for kind in ALL {
        round_trip(kind).await;
    }
}
