"""Model card templates (the package exposes this folder as `hf_eagle31.hub_cards`)."""
