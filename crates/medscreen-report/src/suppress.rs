//! Small-cell suppression: which counts the page may show.
//!
//! The page is one set of counts (cells) tied together by groups: a group is a set of cells of which
//! one is the sum of the others as the page shows them (records read = screened + invalid + skipped;
//! one rule's row adds up to the records its pack screened; a column of the age-by-sex table adds up to
//! its total). A count that appears in two tables is one cell, so the two tables cannot disagree on
//! whether it is shown.
//!
//! The rule, applied to the whole page at once:
//!
//! 1. **Primary suppression.** Every count from 1 to `min_cell - 1` is shown as `<11` (for the default
//!    `min_cell` of 11). Zero is shown: knowing that nobody is in a cell identifies nobody.
//! 2. **Complementary suppression.** In every group where exactly one cell is hidden, the total minus the
//!    shown cells would give it back, so the next smallest shown non-zero cell of that group is hidden
//!    too (shown as `*`); a zero is never chosen, as hiding it would leave the subtraction exact.
//!    Hiding a cell can leave another group with exactly one hidden cell, so the step repeats until no
//!    group has exactly one: then every group has no hidden cell or at least two, and no subtraction
//!    inside a group recovers a hidden count.
//! 3. Rows the page leaves out to stay small ("and N more") count as hidden in their groups.
//!
//! The page lists as groups the sums a reader can form from what it shows, including the sums of two
//! groups that share their total (read = clear + flagged + invalid + skipped). It protects against
//! recovery by subtraction, as public-health small-cell rules ask; it does not claim to defeat every
//! linear-programming attack, which only bounds a hidden cell within an interval.

/// How the page shows one count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// The count itself.
    Shown(u64),
    /// Below the threshold (primary suppression): shown as `<min_cell`.
    Small,
    /// Hidden so that a small count cannot be recovered by subtraction (complementary suppression).
    Complement,
    /// Not on the page (a row beyond the page's cap).
    Omitted,
}

impl Cell {
    /// Whether the page shows the exact count.
    pub fn shown(self) -> Option<u64> {
        match self {
            Cell::Shown(v) => Some(v),
            _ => None,
        }
    }
}

/// Counts and the groups that tie them, solved once for the whole page.
#[derive(Debug, Default, Clone)]
pub struct Grid {
    values: Vec<u64>,
    omitted: Vec<bool>,
    groups: Vec<Vec<usize>>,
}

/// The index of a cell in a [`Grid`].
pub type CellId = usize;

impl Grid {
    /// Adds a count that the page shows.
    pub fn cell(&mut self, value: u64) -> CellId {
        self.values.push(value);
        self.omitted.push(false);
        self.values.len() - 1
    }

    /// Adds a count that belongs to groups but is left off the page.
    pub fn omitted(&mut self, value: u64) -> CellId {
        self.values.push(value);
        self.omitted.push(true);
        self.values.len() - 1
    }

    /// Declares that one of `members` is the sum of the others.
    pub fn group(&mut self, members: Vec<CellId>) {
        if members.len() > 1 {
            self.groups.push(members);
        }
    }

    /// Decides how each cell is shown (see the module docs).
    pub fn solve(&self, min_cell: u64) -> Vec<Cell> {
        let mut cells: Vec<Cell> = self
            .values
            .iter()
            .zip(&self.omitted)
            .map(|(&v, &omitted)| {
                if omitted {
                    Cell::Omitted
                } else if v > 0 && v < min_cell {
                    Cell::Small
                } else {
                    Cell::Shown(v)
                }
            })
            .collect();
        let hidden = |c: Option<&Cell>| !matches!(c, Some(Cell::Shown(_)));
        loop {
            let mut changed = false;
            for group in &self.groups {
                let n_hidden = group.iter().filter(|&&i| hidden(cells.get(i))).count();
                if n_hidden != 1 {
                    continue;
                }
                let next = group
                    .iter()
                    .filter_map(|&i| match cells.get(i) {
                        Some(Cell::Shown(v)) if *v > 0 => Some((*v, i)),
                        _ => None,
                    })
                    .min();
                match next {
                    Some((_, i)) => {
                        if let Some(c) = cells.get_mut(i) {
                            *c = Cell::Complement;
                        }
                    }
                    // Every other cell is zero, so the hidden one equals the total: hide the group.
                    None => {
                        for &i in group {
                            if let Some(c @ Cell::Shown(_)) = cells.get_mut(i) {
                                *c = Cell::Complement;
                            }
                        }
                    }
                }
                changed = true;
            }
            if !changed {
                return cells;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What someone reading the page can work out: for each group with exactly one hidden cell, its
    /// value by subtraction. The groups here are written as `members[0] = sum of the rest`.
    fn recover_by_subtraction(cells: &[Cell], groups: &[Vec<usize>]) -> Vec<usize> {
        let mut recovered = Vec::new();
        for g in groups {
            let hidden: Vec<usize> = g
                .iter()
                .copied()
                .filter(|&i| cells[i].shown().is_none())
                .collect();
            if let [one] = hidden.as_slice() {
                recovered.push(*one);
            }
        }
        recovered
    }

    #[test]
    fn one_small_cell_in_a_total_cannot_be_recovered_by_subtraction() {
        // read = clear + flagged + invalid: invalid = 3 would be read - clear - flagged.
        let mut g = Grid::default();
        let read = g.cell(143);
        let clear = g.cell(40);
        let flagged = g.cell(100);
        let invalid = g.cell(3);
        g.group(vec![read, clear, flagged, invalid]);
        let cells = g.solve(11);
        assert_eq!(cells[invalid], Cell::Small);
        // The next smallest shown count goes too.
        assert_eq!(cells[clear], Cell::Complement);
        assert_eq!(cells[flagged], Cell::Shown(100));
        assert_eq!(cells[read], Cell::Shown(143));
        assert!(recover_by_subtraction(&cells, &g.groups).is_empty());
    }

    #[test]
    fn a_zero_is_never_the_complement_because_hiding_it_keeps_the_subtraction_exact() {
        let mut g = Grid::default();
        let total = g.cell(55);
        let a = g.cell(0);
        let b = g.cell(5);
        let c = g.cell(50);
        g.group(vec![total, a, b, c]);
        let cells = g.solve(11);
        assert_eq!(cells[a], Cell::Shown(0));
        assert_eq!(cells[b], Cell::Small);
        assert_eq!(cells[c], Cell::Complement);
        assert!(recover_by_subtraction(&cells, &g.groups).is_empty());
    }

    #[test]
    fn a_complement_that_leaves_another_group_with_one_hidden_cell_spreads_until_none_has_one() {
        // A 2 x 2 table with margins: rows r0 = a + b, r1 = c + d; columns k0 = a + c, k1 = b + d;
        // grand = r0 + r1 = k0 + k1.
        let mut g = Grid::default();
        let [a, b, c, d] = [g.cell(4), g.cell(30), g.cell(20), g.cell(40)];
        let r0 = g.cell(34);
        let r1 = g.cell(60);
        let k0 = g.cell(24);
        let k1 = g.cell(70);
        let grand = g.cell(94);
        for group in [
            vec![r0, a, b],
            vec![r1, c, d],
            vec![k0, a, c],
            vec![k1, b, d],
            vec![grand, r0, r1],
            vec![grand, k0, k1],
        ] {
            g.group(group);
        }
        let cells = g.solve(11);
        assert_eq!(cells[a], Cell::Small);
        assert!(recover_by_subtraction(&cells, &g.groups).is_empty());
        for group in &g.groups {
            let n = group
                .iter()
                .filter(|&&i| cells[i].shown().is_none())
                .count();
            assert_ne!(n, 1, "group {group:?} leaves one hidden cell: {cells:?}");
        }
        // The small cell is hidden in both its row and its column, so neither gives it back.
        assert!(cells[b].shown().is_none() || cells[r0].shown().is_none());
        assert!(cells[c].shown().is_none() || cells[k0].shown().is_none());
    }

    #[test]
    fn a_small_cell_alone_in_its_group_hides_the_total() {
        // Every other part is zero: the total is the small count, and is hidden as such.
        let mut g = Grid::default();
        let total = g.cell(7);
        let a = g.cell(7);
        let b = g.cell(0);
        g.group(vec![total, a, b]);
        let cells = g.solve(11);
        assert_eq!(cells[total], Cell::Small);
        assert_eq!(cells[a], Cell::Small);
        assert_eq!(cells[b], Cell::Shown(0));
    }

    #[test]
    fn an_omitted_row_counts_as_hidden_in_its_groups() {
        let mut g = Grid::default();
        let total = g.cell(100);
        let shown = g.cell(60);
        let left_off = g.omitted(35);
        let small = g.cell(5);
        g.group(vec![total, shown, left_off, small]);
        let cells = g.solve(11);
        // Two cells are already unknown to the reader: nothing more needs hiding.
        assert_eq!(cells[shown], Cell::Shown(60));
        assert_eq!(cells[total], Cell::Shown(100));
        assert_eq!(cells[small], Cell::Small);
    }

    #[test]
    fn counts_at_the_threshold_are_shown_and_below_it_are_not() {
        let mut g = Grid::default();
        let at = g.cell(11);
        let below = g.cell(10);
        let cells = g.solve(11);
        assert_eq!(cells[at], Cell::Shown(11));
        assert_eq!(cells[below], Cell::Small);
        let cells = g.solve(1);
        assert_eq!(cells[below], Cell::Shown(10));
    }
}
