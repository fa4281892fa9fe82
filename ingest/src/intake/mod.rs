//! The channels inputs arrive by. [`files`] walks paths given to `import` (files, directories,
//! mbox files, maildirs) into envelopes.

pub mod files;
