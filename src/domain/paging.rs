//! Page size rules shared by the paged RPCs.

use super::article::FieldViolation;

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

/// 0 means 20; above 100 is treated as 100; negative is refused.
pub fn page_size(requested: i32) -> Result<u32, FieldViolation> {
    match u32::try_from(requested) {
        Err(_) => Err(FieldViolation::new(
            "page_size",
            "page_size must not be negative",
        )),
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(size) => Ok(size.min(MAX_PAGE_SIZE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_rules() {
        assert_eq!(page_size(0), Ok(20));
        assert_eq!(page_size(1), Ok(1));
        assert_eq!(page_size(100), Ok(100));
        assert_eq!(page_size(101), Ok(100));
        assert_eq!(page_size(i32::MAX), Ok(100));
        assert_eq!(page_size(-1).map_err(|v| v.field), Err("page_size"));
    }
}
