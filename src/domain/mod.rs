//! Pure rules of the contract: no I/O here, so every rule is unit-testable.

pub mod article;
pub mod lifecycle;
pub mod paging;
pub mod slug;
pub mod token;
