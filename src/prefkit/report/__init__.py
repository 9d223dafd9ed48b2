"""Rendering of findings, ratings and metrics: self-contained HTML (no CDN), JSON, CSV."""
