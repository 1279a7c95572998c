//! `Rocket.toml` against the configuration type: every key of ours is shown
//! there, with its default.

use rocket::figment::providers::{Format, Toml};
use rocket::figment::Figment;
use serde_json::Value;

use super::AppConfig;

fn rocket_toml() -> Figment {
    Figment::from(Toml::file(concat!(env!("CARGO_MANIFEST_DIR"), "/Rocket.toml")).nested())
}

/// Every key with a value, as dotted paths (`databases.main.url`).
fn keys(value: &Value, prefix: &str, into: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (name, value) in fields {
                keys(value, &format!("{prefix}{name}."), into);
            }
        }
        Value::Null => {}
        _ => into.push(prefix.trim_end_matches('.').to_owned()),
    }
}

#[test]
fn rocket_toml_shows_every_key_with_its_default() {
    let defaults = AppConfig::from_figment(&Figment::new()).expect("the defaults are valid");
    let shown = rocket_toml();

    let mut expected = Vec::new();
    keys(&serde_json::to_value(&defaults).expect("serializable"), "", &mut expected);
    // The default database URL depends on data_dir; Rocket.toml shows it.
    expected.push("databases.main.url".to_owned());
    for key in &expected {
        assert!(shown.contains(key), "Rocket.toml does not show `{key}`");
    }
    let mut from_file = AppConfig::from_figment(&shown).expect("Rocket.toml is valid");
    assert_eq!(from_file.database_url(), defaults.database_url(), "the default database URL");
    from_file.databases.main.url = None;
    assert_eq!(from_file, defaults, "Rocket.toml's values are the defaults");
}
