//! `exclave layout check`.

use std::process::ExitCode;

use exclave::core::layout::{self, Layout, Rule};
use serde_json::json;

/// Prints the check report (or the refusal) and returns 0 if the layout keeps the rule, 1 if not.
pub(crate) fn check(file_layout: &Layout, rule: Rule, as_json: bool) -> ExitCode {
    let result = layout::check(file_layout, rule);
    if as_json {
        let value = match &result {
            Ok(r) => json!({
                "ok": true,
                "epoch": file_layout.epoch,
                "profile": { "k": r.profile.k(), "m": r.profile.m() },
                "survive_foreign_losses": rule.survive_foreign_losses,
                "sites": r.shares.iter().map(|s| json!({
                    "id": s.site.0, "name": s.name, "home": s.home,
                    "min_shards": s.min, "max_shards": s.max,
                })).collect::<Vec<_>>(),
                "survives_home_plus": r.survives_home_plus,
                "survives_any": r.survives_any,
                "largest_blind_coalition": r.largest_blind_coalition,
                "largest_blind_coalition_shards": r.largest_blind_coalition_shards,
            }),
            Err(e) => json!({ "ok": false, "epoch": file_layout.epoch, "reason": e.to_string() }),
        };
        println!("{value:#}");
    } else {
        match &result {
            Ok(r) => println!(
                "layout epoch {} keeps the rule (f = {})\n{r}",
                file_layout.epoch, rule.survive_foreign_losses
            ),
            Err(e) => eprintln!("layout epoch {} refused: {e}", file_layout.epoch),
        }
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
