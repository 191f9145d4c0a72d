//! Saved groups: named lists of attribute values for `$inGroup`/`$notInGroup` in targeting
//! (GrowthBook's saved groups). Stored here, published to the edge with the config set, and read
//! by the control plane's own `POST /api/v1/assign`.

use litmus_shared::SavedGroups;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::types::Json as Db;

/// Every saved group, for the config set the edge receives.
pub async fn all(db: &PgPool) -> sqlx::Result<SavedGroups> {
    let rows = sqlx::query_as(r#"SELECT id, "values" FROM saved_groups ORDER BY id"#).fetch_all(db).await?;
    Ok(by_id(rows))
}

/// The saved groups a condition refers to (a lookup per assignment need not read every group).
pub async fn referenced_by(db: &PgPool, condition: &Value) -> sqlx::Result<SavedGroups> {
    let mut ids = Vec::new();
    collect_ids(condition, &mut ids);
    if ids.is_empty() {
        return Ok(SavedGroups::new());
    }
    let rows = sqlx::query_as(r#"SELECT id, "values" FROM saved_groups WHERE id = ANY($1)"#).bind(&ids).fetch_all(db).await?;
    Ok(by_id(rows))
}

fn by_id(rows: Vec<(String, Db<Vec<Value>>)>) -> SavedGroups {
    rows.into_iter().map(|(id, Db(values))| (id, values)).collect()
}

/// The group ids named by `$inGroup`/`$notInGroup` anywhere in a condition.
pub fn collect_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$inGroup" | "$notInGroup", Value::String(id)) => out.push(id.clone()),
                    _ => collect_ids(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_ids(i, out)),
        _ => {}
    }
}

/// Most values a group may hold: the whole set travels to the edge in one KV value.
pub const MAX_VALUES: usize = 10_000;

/// Checks a group's values: strings, numbers or booleans (GrowthBook compares with `===`, so an
/// object or array in a group could never match anything), at most [`MAX_VALUES`].
pub fn check_values(values: &[Value]) -> Result<(), (String, String)> {
    if values.len() > MAX_VALUES {
        return Err(("values".into(), format!("at most {MAX_VALUES} values")));
    }
    for (i, v) in values.iter().enumerate() {
        if !(v.is_string() || v.is_number() || v.is_boolean()) {
            return Err((format!("values[{i}]"), "must be a string, a number or a boolean".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_group_ids_at_any_depth() {
        let mut ids = Vec::new();
        collect_ids(&json!({"$or": [{"id": {"$inGroup": "beta"}}, {"org": {"$not": {"$notInGroup": "staff"}}}], "x": {"$inGroup": 3}}), &mut ids);
        assert_eq!(ids, ["beta", "staff"]);
    }

    #[test]
    fn values_are_scalars() {
        assert!(check_values(&[json!("a"), json!(1), json!(true)]).is_ok());
        assert_eq!(check_values(&[json!("a"), json!({"b": 1})]).map_err(|e| e.0), Err("values[1]".to_owned()));
        assert_eq!(check_values(&vec![json!(1); MAX_VALUES + 1]).map_err(|e| e.0), Err("values".to_owned()));
    }
}
