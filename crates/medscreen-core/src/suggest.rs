//! Did-you-mean suggestions from edit distance, for misspelt fields, operators and classes.

/// The candidate closest to `word` by edit distance, if it is close enough to be a plausible typo.
///
/// "Close enough" is at most one edit per three characters of the longer word (at least one), so that
/// `pregnent` suggests `pregnant` but `age` does not suggest `sex`.
pub fn did_you_mean<'c, I>(word: &str, candidates: I) -> Option<&'c str>
where
    I: IntoIterator<Item = &'c str>,
{
    let word = word.to_ascii_lowercase();
    let mut best: Option<(usize, &'c str)> = None;
    for cand in candidates {
        let d = distance(&word, &cand.to_ascii_lowercase());
        let limit = (word.chars().count().max(cand.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), over chars.
#[expect(
    clippy::indexing_slicing,
    reason = "i runs over 1..=a.len() and j over 1..=b.len(); the rows hold b.len() + 1 cells"
)]
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let fields = ["pregnant", "age", "sex", "egfr", "seizure_history"];
        assert_eq!(did_you_mean("pregnent", fields), Some("pregnant"));
        assert_eq!(did_you_mean("egrf", fields), Some("egfr"));
        assert_eq!(
            did_you_mean("seizure_histroy", fields),
            Some("seizure_history")
        );
        assert_eq!(did_you_mean("AGE", fields), Some("age"));
        assert_eq!(did_you_mean("weight", fields), None);
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("ab", "ba"), 1);
        assert_eq!(distance("", "abc"), 3);
    }
}
