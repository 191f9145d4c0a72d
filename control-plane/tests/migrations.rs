//! Upgrades: a migration that rewrites data is run against data written by the schema before it.

use sqlx::PgPool;

const BEFORE_0007: [&str; 6] = [
    include_str!("../../migrations/0001_experiments.sql"),
    include_str!("../../migrations/0002_events.sql"),
    include_str!("../../migrations/0003_unit_metrics.sql"),
    include_str!("../../migrations/0004_experiment_metrics.sql"),
    include_str!("../../migrations/0005_unit_metrics_values_key.sql"),
    include_str!("../../migrations/0006_async_rollup.sql"),
];

#[sqlx::test(migrations = false)]
async fn event_ids_become_uuid_keys_the_way_ingest_computes_them(db: PgPool) {
    for sql in BEFORE_0007 {
        sqlx::raw_sql(sql).execute(&db).await.expect("migrations 0001-0006");
    }
    let (a, b) = ("11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222");
    let canonical = "0193a8f2-7c4e-7b21-9f3a-5d6e7f809102";
    let upper = canonical.to_uppercase();
    for (experiment, id) in [(a, canonical), (a, upper.as_str()), (a, "abc"), (b, "abc")] {
        sqlx::query("INSERT INTO event_ids (experiment_id, event_id) VALUES ($1::uuid, $2)")
            .bind(experiment)
            .bind(id)
            .execute(&db)
            .await
            .expect("an id stored before 0007");
    }
    sqlx::raw_sql(include_str!("../../migrations/0007_event_keys.sql")).execute(&db).await.expect("0007");
    let keys: Vec<(String, String)> =
        sqlx::query_as("SELECT experiment_id::text, event_key::text FROM event_ids ORDER BY 1, 2").fetch_all(&db).await.expect("keys");
    let key = |e: &str, k: &str| (e.to_owned(), k.to_owned());
    // A canonical UUID is its own key; anything else (an uppercase UUID too) is its MD5, as in
    // `http::events::event_key` (whose unit test pins MD5("abc") = 900150983cd24fb0d6963f7d28e17f72).
    assert_eq!(keys, [
        key(a, canonical),
        key(a, "2ece3f9d-44a6-20fa-5cef-d78043f1f709"),
        key(a, "90015098-3cd2-4fb0-d696-3f7d28e17f72"),
        key(b, "90015098-3cd2-4fb0-d696-3f7d28e17f72"),
    ]);
}
