//! What every shape is built from: a name, an optional explicit backend and
//! optional options, resolved against the process's default when used.

use crate::backend::{validate_name, SharedBackend};
use crate::error::Result;
use crate::global::default_backend;
use crate::options::LockOptions;

/// A shape's name, backend and options before use.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) name: String,
    pub(crate) backend: Option<SharedBackend>,
    pub(crate) options: Option<LockOptions>,
}

impl Spec {
    /// `name` in the default backend, or in `backend` when given.
    pub(crate) fn new(name: String, backend: Option<SharedBackend>) -> Self {
        Spec {
            name,
            backend,
            options: None,
        }
    }

    /// The same spec with `options`.
    pub(crate) fn with_options(mut self, options: LockOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// The backend and options to use, with the name and options checked:
    /// the explicit backend or the default one, and the explicit options,
    /// else those given to `configure_with`, else the defaults.
    pub(crate) fn resolve(&self) -> Result<(SharedBackend, LockOptions)> {
        self.resolve_name(&self.name)
    }

    /// [`resolve`](Self::resolve) for another name in the same backend with
    /// the same options (a multi-lock's members).
    pub(crate) fn resolve_name(&self, name: &str) -> Result<(SharedBackend, LockOptions)> {
        validate_name(name)?;
        let (backend, configured) = match &self.backend {
            Some(backend) => (backend.clone(), default_backend().ok().map(|(_, o)| o)),
            None => {
                let (backend, options) = default_backend()?;
                (backend, Some(options))
            }
        };
        let options = self.options.clone().or(configured).unwrap_or_default();
        options.validate()?;
        Ok((backend, options))
    }
}
