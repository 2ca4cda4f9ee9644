//! The baseline: the statements that create a [`Catalog`]'s schema from nothing, in the
//! server's own dependency order.

use std::fmt;

use super::{Catalog, ObjectKind};

/// Why a baseline could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineError {
    /// The objects the catalog model cannot recreate (`rule r ON public.t`…).
    pub unrenderable: Vec<String>,
}

impl fmt::Display for BaselineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the baseline cannot recreate {} object(s): {}",
            self.unrenderable.len(),
            self.unrenderable.join(", ")
        )
    }
}

impl std::error::Error for BaselineError {}

/// The statements that create `catalog`'s schema in an empty database, in the server's own
/// dependency order (see [`super::depend`]), the comments last. Objects it cannot render are an
/// error unless `allow_partial`, which lists them in a comment instead.
pub fn baseline_sql(catalog: &Catalog, allow_partial: bool) -> Result<String, BaselineError> {
    if !catalog.unrenderable.is_empty() && !allow_partial {
        return Err(BaselineError {
            unrenderable: catalog.unrenderable.clone(),
        });
    }
    let mut out = Vec::new();
    for what in &catalog.unrenderable {
        out.push(format!("-- not recreated here, write it by hand: {what}"));
    }
    // A function's body that is a string is not read until it runs: it may name tables and
    // views created after it.
    out.push("SET LOCAL check_function_bodies = off;".to_owned());
    out.extend(creation_statements(catalog));
    Ok(out.join("\n") + "\n")
}

/// The statements that create what `catalog` can render, one object each, in creation order,
/// the comments last.
pub(crate) fn creation_statements(catalog: &Catalog) -> Vec<String> {
    let mut out = super::depend::creation_order(catalog);
    let mut comments: Vec<_> = catalog
        .objects
        .iter()
        .filter(|((kind, _), _)| *kind == ObjectKind::Comment)
        .map(|(_, o)| o)
        .collect();
    comments.sort_by_key(|o| o.order);
    out.extend(comments.into_iter().map(|o| o.definition.clone()));
    out
}
