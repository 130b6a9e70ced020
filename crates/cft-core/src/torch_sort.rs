//! The order in which PyTorch's CPU `torch.sort(x, descending=True)` (unstable, the default)
//! lists tied values, reproduced exactly.
//!
//! The authors' GA keeps as its elite `population[torch.sort(fitness, descending=True)[1][0]]`.
//! On the CPU that sort is libstdc++'s `std::sort` (an introsort: median-of-three quicksort down
//! to runs of 16, heapsort past a depth of 2·⌊log₂ n⌋, then one insertion sort) over
//! (value, index) pairs compared by value alone with `a > b` (NaN first). Among equal values the
//! resulting order is neither ascending nor descending by index, and its first index is usually
//! not the first maximum; [`descending_order`] returns the same permutation, step for step, so
//! `GaEliteTies::TorchCpu` ([`crate::GaEliteTies`]) picks the reference's elite. Written from
//! the algorithm's description; checked against torch 2.15 on 900 tie patterns
//! (`datasets/fixtures/ga_ties/`).

/// libstdc++'s `_S_threshold`: partitions stop at runs this short; insertion sort finishes.
const THRESHOLD: usize = 16;

/// `torch.sort(values, descending=True)[1]` on the CPU: the indices of `values` in the order
/// PyTorch's unstable sort lists them (ties included).
pub fn descending_order(values: &[f32]) -> Vec<usize> {
    let mut items: Vec<(f32, usize)> = values.iter().copied().zip(0..).collect();
    sort(&mut items);
    items.into_iter().map(|(_, i)| i).collect()
}

/// PyTorch's descending comparator: greater first, NaN before every number.
fn comes_before(a: f32, b: f32) -> bool {
    a > b || (a.is_nan() && !b.is_nan())
}

fn less(v: &[(f32, usize)], i: usize, j: usize) -> bool {
    comes_before(v[i].0, v[j].0)
}

/// `std::sort(first, last, comp)`.
fn sort(v: &mut [(f32, usize)]) {
    let n = v.len();
    if n < 2 {
        return;
    }
    introsort_loop(v, 0, n, 2 * n.ilog2() as usize);
    final_insertion_sort(v, 0, n);
}

/// `__introsort_loop`: quicksort the right part recursively, loop on the left part.
fn introsort_loop(v: &mut [(f32, usize)], first: usize, mut last: usize, mut depth_limit: usize) {
    while last - first > THRESHOLD {
        if depth_limit == 0 {
            heap_sort(v, first, last);
            return;
        }
        depth_limit -= 1;
        let cut = partition_pivot(v, first, last);
        introsort_loop(v, cut, last, depth_limit);
        last = cut;
    }
}

/// `__unguarded_partition_pivot`: the median of (first+1, mid, last−1) moved to `first`, then
/// Hoare's partition of `[first+1, last)` around it.
fn partition_pivot(v: &mut [(f32, usize)], first: usize, last: usize) -> usize {
    let mid = first + (last - first) / 2;
    move_median_to_first(v, first, first + 1, mid, last - 1);
    unguarded_partition(v, first + 1, last, first)
}

/// `__move_median_to_first`.
fn move_median_to_first(v: &mut [(f32, usize)], result: usize, a: usize, b: usize, c: usize) {
    let pick = if less(v, a, b) {
        if less(v, b, c) {
            b
        } else if less(v, a, c) {
            c
        } else {
            a
        }
    } else if less(v, a, c) {
        a
    } else if less(v, b, c) {
        c
    } else {
        b
    };
    v.swap(result, pick);
}

/// `__unguarded_partition`: both scans stop on elements equal to the pivot, so ties are swapped.
fn unguarded_partition(v: &mut [(f32, usize)], mut first: usize, mut last: usize, pivot: usize) -> usize {
    loop {
        while less(v, first, pivot) {
            first += 1;
        }
        last -= 1;
        while less(v, pivot, last) {
            last -= 1;
        }
        if first >= last {
            return first;
        }
        v.swap(first, last);
        first += 1;
    }
}

/// `__final_insertion_sort`: guarded on the first 16, unguarded after (a smaller element is
/// known to sit in the first run).
fn final_insertion_sort(v: &mut [(f32, usize)], first: usize, last: usize) {
    if last - first > THRESHOLD {
        insertion_sort(v, first, first + THRESHOLD);
        for i in first + THRESHOLD..last {
            unguarded_linear_insert(v, i);
        }
    } else {
        insertion_sort(v, first, last);
    }
}

/// `__insertion_sort`.
fn insertion_sort(v: &mut [(f32, usize)], first: usize, last: usize) {
    for i in first + 1..last {
        if less(v, i, first) {
            v[first..=i].rotate_right(1);
        } else {
            unguarded_linear_insert(v, i);
        }
    }
}

/// `__unguarded_linear_insert`: shift the element left past every element it comes before.
fn unguarded_linear_insert(v: &mut [(f32, usize)], mut last: usize) {
    let val = v[last];
    while comes_before(val.0, v[last - 1].0) {
        v[last] = v[last - 1];
        last -= 1;
    }
    v[last] = val;
}

/// `std::__partial_sort(first, last, last)`: `make_heap` then `sort_heap`.
fn heap_sort(v: &mut [(f32, usize)], first: usize, last: usize) {
    let len = last - first;
    if len >= 2 {
        let mut parent = (len - 2) / 2;
        loop {
            let value = v[first + parent];
            adjust_heap(v, first, parent, len, value);
            if parent == 0 {
                break;
            }
            parent -= 1;
        }
    }
    let mut end = last;
    while end - first > 1 {
        end -= 1;
        let value = v[end];
        v[end] = v[first];
        adjust_heap(v, first, 0, end - first, value);
    }
}

/// `__adjust_heap`: sift the hole down to a leaf, then push `value` up from there.
fn adjust_heap(v: &mut [(f32, usize)], first: usize, mut hole: usize, len: usize, value: (f32, usize)) {
    let top = hole;
    let mut child = hole;
    while child < (len - 1) / 2 {
        child = 2 * (child + 1);
        if less(v, first + child, first + child - 1) {
            child -= 1;
        }
        v[first + hole] = v[first + child];
        hole = child;
    }
    if len.is_multiple_of(2) && child == (len - 2) / 2 {
        child = 2 * (child + 1);
        v[first + hole] = v[first + child - 1];
        hole = child - 1;
    }
    // `__push_heap`.
    while hole > top {
        let parent = (hole - 1) / 2;
        if !comes_before(v[first + parent].0, value.0) {
            break;
        }
        v[first + hole] = v[first + parent];
        hole = parent;
    }
    v[first + hole] = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_values_sort_descending() {
        let values: Vec<f32> = (0..200).map(|i| ((i * 7919) % 211) as f32).collect();
        let order = descending_order(&values);
        assert!(order.windows(2).all(|w| values[w[0]] > values[w[1]]));
        let mut seen = order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn heap_sort_is_a_correct_sort_too() {
        // The depth limit is rarely reached; check the heapsort path on its own.
        let values: Vec<f32> = (0..97).map(|i| ((i * 31) % 13) as f32).collect();
        let mut items: Vec<(f32, usize)> = values.iter().copied().zip(0..).collect();
        heap_sort(&mut items, 0, 97);
        assert!(items.windows(2).all(|w| w[0].0 >= w[1].0));
    }

    #[test]
    fn nan_comes_first_and_short_inputs_work() {
        assert_eq!(descending_order(&[1.0, f32::NAN, 2.0]), vec![1, 2, 0]);
        assert_eq!(descending_order(&[]), Vec::<usize>::new());
        assert_eq!(descending_order(&[3.0]), vec![0]);
    }
}
