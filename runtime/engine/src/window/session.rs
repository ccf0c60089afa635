//! Session merging: one key's stored session windows and the windows of its
//! new records, merged wherever they touch.

use super::assigner::Bounds;

/// A session after merging: its bounds, the stored windows it absorbs and the
/// new records (by input row) it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    pub bounds: Bounds,
    pub stored: Vec<Bounds>,
    pub rows: Vec<u32>,
}

/// Merge a key's stored windows with new `(row, window)`s. Returns only the
/// sessions that get new records, in time order; stored windows that no new
/// record touches stay as they are and are not returned.
pub fn merge(stored: &[Bounds], new: &[(u32, Bounds)]) -> Vec<Merged> {
    // (bounds, Some(row) for a new record, None for a stored window)
    let mut all: Vec<(Bounds, Option<u32>)> = stored.iter().map(|b| (*b, None)).collect();
    all.extend(new.iter().map(|(r, b)| (*b, Some(*r))));
    all.sort_by_key(|(b, r)| (b.start, b.end, r.is_some(), *r));
    let mut out: Vec<Merged> = Vec::new();
    let mut cur: Option<Merged> = None;
    for (b, row) in all {
        match &mut cur {
            Some(m) if m.bounds.touches(&b) => {
                m.bounds = m.bounds.cover(&b);
                match row {
                    Some(r) => m.rows.push(r),
                    None => m.stored.push(b),
                }
            }
            _ => {
                if let Some(m) = cur.take().filter(|m| !m.rows.is_empty()) {
                    out.push(m);
                }
                cur = Some(Merged {
                    bounds: b,
                    stored: if row.is_none() { vec![b] } else { vec![] },
                    rows: row.into_iter().collect(),
                });
            }
        }
    }
    if let Some(m) = cur.filter(|m| !m.rows.is_empty()) {
        out.push(m);
    }
    for m in &mut out {
        m.rows.sort_unstable();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(start: i64, end: i64) -> Bounds {
        Bounds { start, end }
    }

    #[test]
    fn a_record_inside_a_session_joins_it() {
        let m = merge(&[b(0, 30)], &[(0, b(10, 40))]);
        assert_eq!(m, vec![Merged { bounds: b(0, 40), stored: vec![b(0, 30)], rows: vec![0] }]);
    }

    #[test]
    fn an_out_of_order_record_bridges_two_sessions() {
        let m = merge(&[b(0, 30), b(50, 80), b(200, 230)], &[(3, b(25, 55))]);
        assert_eq!(m, vec![Merged { bounds: b(0, 80), stored: vec![b(0, 30), b(50, 80)], rows: vec![3] }]);
    }

    #[test]
    fn new_records_merge_among_themselves_and_far_ones_stay_apart() {
        let m = merge(&[], &[(2, b(100, 130)), (0, b(0, 30)), (1, b(30, 60))]);
        assert_eq!(
            m,
            vec![
                Merged { bounds: b(0, 60), stored: vec![], rows: vec![0, 1] },
                Merged { bounds: b(100, 130), stored: vec![], rows: vec![2] },
            ]
        );
    }

    #[test]
    fn untouched_stored_windows_are_not_returned() {
        assert_eq!(merge(&[b(0, 30)], &[]), vec![]);
        assert_eq!(merge(&[b(0, 30)], &[(0, b(31, 61))]).len(), 1);
    }
}
