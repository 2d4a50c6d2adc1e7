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
        outln!("{value:#}");
    } else {
        match &result {
            Ok(r) => outln!(
                "layout epoch {} keeps the rule (f = {})\n{r}",
                file_layout.epoch,
                rule.survive_foreign_losses
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

/// `layout apply`: prints what changed; true when every node stored the new cluster record.
pub(crate) fn apply(
    config: &std::path::Path,
    file: &std::path::Path,
    out: &std::path::Path,
    replace: &[u32],
    json: bool,
) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let r = runtime.block_on(exclave::ops::layout::apply(config, file, out, replace))?;
    let complete = r.record_missing.is_empty();
    if json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(complete);
    }
    if r.already_current {
        outln!("layout epoch {} was already current", r.epoch);
    } else {
        outln!("layout epoch {} is current", r.epoch);
    }
    if let Some(p) = &r.previous_layout_file {
        outln!("the earlier layout is kept in {}", p.display());
    }
    for n in &r.new_nodes {
        outln!(
            "new node {} at site {} ({}): copy {} to its host, then `exclaved --config {}/node.toml`",
            n.node,
            n.site,
            n.addr,
            n.dir.display(),
            n.dir.display()
        );
    }
    for n in &r.replaced_nodes {
        outln!(
            "replaced node {} at site {} ({}): copy {} to its new host, start \
             `exclaved --config {}/node.toml` there, then `exclave heal --wait` refills it",
            n.node,
            n.site,
            n.addr,
            n.dir.display(),
            n.dir.display()
        );
    }
    outln!(
        "cluster record stored at {} node(s){}",
        r.record_stored.len(),
        if complete {
            String::new()
        } else {
            format!(
                "; NOT at nodes {:?}: run `layout apply` again once they answer",
                r.record_missing
            )
        }
    );
    outln!("start the new nodes, then the gateway");
    Ok(complete)
}
