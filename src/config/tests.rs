//! Config parsing, and the config reference (`docs/config.md`) checked against the structs.

use super::*;

#[test]
fn unknown_keys_are_refused_with_the_line() {
    let text = "epoch = 1\nk = 3\nm = 2\nsites = []\nflavour = 'x'\n";
    let err = parse_layout(text, "layout.toml").unwrap_err().to_string();
    assert!(
        err.contains("layout.toml") && err.contains("flavour") && err.contains("line 5"),
        "{err}"
    );
}

/// The keys `docs/config.md` documents under a `## \`[section]\`` heading.
fn documented(section: &str) -> Vec<String> {
    let doc = include_str!("../../docs/config.md");
    let heading = format!("## `[{section}]`");
    let start = doc.find(&heading).expect("section documented");
    let rest = &doc[start + heading.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    let mut keys: Vec<String> = rest[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_string()))
        .collect();
    keys.sort();
    keys
}

/// The keys the config struct of `section` accepts, read from serde's own refusal of an
/// unknown key ("expected one of ...").
fn accepted(section: &str) -> Vec<String> {
    let text = format!("[{section}]\nnot_a_key_zz = 1\n");
    let err = toml::from_str::<RawDaemon>(&text).unwrap_err().to_string();
    let list = err
        .split("expected one of")
        .nth(1)
        .or_else(|| err.split("expected").nth(1))
        .unwrap_or_else(|| panic!("no field list in: {err}"));
    let mut keys: Vec<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    keys.sort();
    keys
}

#[test]
fn every_config_key_is_documented_and_every_documented_key_exists() {
    for section in ["node", "gateway", "tls", "transport", "log"] {
        assert_eq!(
            accepted(section),
            documented(section),
            "[{section}]: the config struct (left) and docs/config.md (right) disagree"
        );
    }
}

#[test]
fn a_bad_profile_names_the_keys() {
    let err = parse_layout("epoch = 1\nk = 0\nm = 2\nsites = []\n", "l.toml").unwrap_err();
    assert!(err.to_string().contains("k, m"), "{err}");
}

#[test]
fn an_mtu_past_what_segmentation_offload_carries_is_refused() {
    let t = |initial: Option<u16>, upper: Option<u16>| {
        RawTransport {
            initial_mtu: initial,
            mtu_upper_bound: upper,
            ..RawTransport::default()
        }
        .settings("x.toml")
    };
    let d = t(None, None).unwrap();
    assert_eq!((d.initial_mtu, d.mtu_upper_bound), (1200, 6550));
    assert!(t(Some(6550), Some(6550)).is_ok());
    let err = t(None, Some(8952)).unwrap_err().to_string();
    assert!(
        err.contains("mtu_upper_bound") && err.contains("6550"),
        "{err}"
    );
    assert!(t(Some(8952), None).is_err());
    assert!(t(Some(1500), Some(1400)).is_err());
}
