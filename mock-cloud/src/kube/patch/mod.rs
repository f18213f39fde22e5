//! Patch engines: JSON merge patch, JSON patch, strategic merge patch, server-side apply.
