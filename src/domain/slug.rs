//! The slug rule shared by tags and articles.
//!
//! A slug is the text lowercased, with every run of characters that are not
//! letters or digits (Unicode's) replaced by a single '-', and no '-' at
//! either end: "US & Canada" -> "us-canada", "Économie" -> "économie".

/// Longest article slug, in characters (Unicode scalar values).
pub const MAX_ARTICLE_SLUG_CHARS: usize = 120;

/// Applies the slug rule. The result may be empty (text with no letter or
/// digit).
pub fn slugify(text: &str) -> String {
    let mut slug = String::with_capacity(text.len());
    let mut pending_dash = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if pending_dash && !slug.is_empty() {
                slug.push('-');
            }
            pending_dash = false;
            slug.push(c);
        } else {
            pending_dash = true;
        }
    }
    slug
}

/// Whether `slug` is a valid article slug: 1 to 120 characters, lowercase
/// letters, digits and single '-' between them. Exactly the non-empty fixed
/// points of [`slugify`] within the length limit, so every derived slug is
/// valid and every valid slug derives to itself.
pub fn is_valid_article_slug(slug: &str) -> bool {
    let chars = slug.chars().count();
    (1..=MAX_ARTICLE_SLUG_CHARS).contains(&chars) && slugify(slug) == slug
}

/// Cuts `slug` at the last '-' that keeps it within `max_chars` characters.
/// A slug already short enough is returned whole; one with no such '-' is cut
/// at `max_chars` characters.
pub fn truncate_at_dash(slug: &str, max_chars: usize) -> &str {
    if slug.chars().count() <= max_chars {
        return slug;
    }
    let limit = slug
        .char_indices()
        .nth(max_chars)
        .map_or(slug.len(), |(index, _)| index);
    // The character just past the limit may itself be the '-' to cut at.
    if slug[limit..].starts_with('-') {
        return &slug[..limit];
    }
    match slug[..limit].rfind('-') {
        Some(dash) if dash > 0 => &slug[..dash],
        _ => &slug[..limit],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn contract_examples() {
        assert_eq!(slugify("US & Canada"), "us-canada");
        assert_eq!(slugify("Russia"), "russia");
        assert_eq!(slugify("Économie"), "économie");
        assert_eq!(slugify("  --Middle   East!! "), "middle-east");
        assert_eq!(slugify("!!!"), "");
        assert_eq!(slugify(""), "");
        assert_eq!(slugify("Sport 2024"), "sport-2024");
        assert_eq!(slugify("東京 ニュース"), "東京-ニュース");
    }

    #[test]
    fn article_slug_validity() {
        assert!(is_valid_article_slug("2019-12-31-us-and-russia"));
        assert!(is_valid_article_slug("a"));
        assert!(is_valid_article_slug("économie-2"));
        assert!(!is_valid_article_slug(""));
        assert!(!is_valid_article_slug("Upper"));
        assert!(!is_valid_article_slug("double--dash"));
        assert!(!is_valid_article_slug("-lead"));
        assert!(!is_valid_article_slug("trail-"));
        assert!(!is_valid_article_slug("under_score"));
        assert!(!is_valid_article_slug("with space"));
        assert!(is_valid_article_slug(&"a".repeat(120)));
        assert!(!is_valid_article_slug(&"a".repeat(121)));
    }

    #[test]
    fn truncation_keeps_whole_words() {
        assert_eq!(truncate_at_dash("abc-def-ghi", 11), "abc-def-ghi");
        assert_eq!(truncate_at_dash("abc-def-ghi", 10), "abc-def");
        assert_eq!(truncate_at_dash("abc-def-ghi", 7), "abc-def");
        assert_eq!(truncate_at_dash("abc-def-ghi", 6), "abc");
        assert_eq!(truncate_at_dash("abcdefghi", 4), "abcd");
        assert_eq!(truncate_at_dash("éé-éé", 3), "éé");
    }

    proptest! {
        #[test]
        fn slugify_is_idempotent(text in "\\PC*") {
            let once = slugify(&text);
            prop_assert_eq!(slugify(&once), once.clone());
            prop_assert!(!once.starts_with('-') && !once.ends_with('-'));
            prop_assert!(!once.contains("--"));
        }

        #[test]
        fn truncation_fits_and_is_a_valid_prefix(text in "[a-z0-9 ]{0,300}", max in 1usize..130) {
            let slug = slugify(&text);
            let cut = truncate_at_dash(&slug, max);
            prop_assert!(cut.chars().count() <= max);
            prop_assert!(slug.starts_with(cut));
            prop_assert!(!cut.ends_with('-'));
        }

        /// Any text (control characters, SQL and LIKE metacharacters, RTL
        /// marks, ...) slugs to lowercase letters and digits with single '-'
        /// between them: nothing else can reach a query or an index.
        #[test]
        fn slugs_hold_only_letters_digits_and_inner_dashes(text in any::<String>()) {
            let slug = slugify(&text);
            prop_assert!(slug.chars().all(|c| c == '-' || c.is_alphanumeric()), "{:?}", slug);
            prop_assert!(!slug.starts_with('-') && !slug.ends_with('-') && !slug.contains("--"));
            prop_assert_eq!(slug.to_lowercase(), slug.clone());
            let valid = is_valid_article_slug(&slug);
            prop_assert_eq!(valid, (1..=MAX_ARTICLE_SLUG_CHARS).contains(&slug.chars().count()));
        }

        #[test]
        fn metacharacters_alone_slug_to_nothing(text in r#"[%_\\'";*?\[\](){}<>|&^$#@!~`=+,./:\-\s\x00-\x1f\x7f\u{200e}\u{200f}\u{202e}\u{feff}]*"#) {
            prop_assert_eq!(slugify(&text), "");
            prop_assert!(!is_valid_article_slug(&text));
        }

        /// A valid article slug is exactly a fixed point of slugify within
        /// the length limit; any other string is refused.
        #[test]
        fn article_slug_validity_is_the_fixed_point_rule(text in any::<String>()) {
            let valid = is_valid_article_slug(&text);
            prop_assert_eq!(
                valid,
                !text.is_empty() && text.chars().count() <= MAX_ARTICLE_SLUG_CHARS && slugify(&text) == text
            );
            if valid {
                prop_assert!(text.chars().all(|c| c == '-' || c.is_alphanumeric()));
            }
        }

        #[test]
        fn truncation_of_any_slug_fits_on_a_char_boundary(text in "\\PC{0,300}", max in 0usize..130) {
            let slug = slugify(&text);
            let cut = truncate_at_dash(&slug, max);
            prop_assert!(cut.chars().count() <= max);
            prop_assert!(slug.starts_with(cut));
            prop_assert!(!cut.ends_with('-'));
        }
    }
}
