//! The resource types the sandbox serves: the built-in kinds and, at run time, every
//! established CustomResourceDefinition.

use serde_json::Value;

/// One `additionalPrinterColumns` entry of a CRD version (also used for built-in tables).
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean`, `date`.
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    /// JSONPath-like `.spec.foo` for CRD columns; empty for built-in kinds (cells are computed).
    pub json_path: String,
}

/// Everything discovery, OpenAPI, tables and the store need to know about a resource type.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// URL segment, e.g. `services`.
    pub plural: String,
    /// e.g. `service`.
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `status` subresource (spec and status written separately).
    pub status_subresource: bool,
    /// Verbs as discovery lists them.
    pub verbs: Vec<String>,
    /// Served from a CRD (generic storage, merge/JSON patch only, no SMP).
    pub custom: bool,
    /// CRD printer columns (empty: the default `Name`, `Age`).
    pub printer_columns: Vec<PrinterColumn>,
    /// CRD `openAPIV3Schema` of this version, when known.
    pub schema: Option<Value>,
}

impl ResourceInfo {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}
