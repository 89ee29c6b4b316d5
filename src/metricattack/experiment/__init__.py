"""The experiment: attack settings and their registry, the campaign that deploys models and runs chunked,
resumable attacks, early-stop goals, scoring and result rows, plans, the sweep and the sanity checks."""
