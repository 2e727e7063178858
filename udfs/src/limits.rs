//! Bounds on the work of one star, shared by the manifest check (a model's own draws) and the session settings
//! (`starflow.draws`): kept apart from both so that neither imports the other.

/// Flow rows of one star (draws x evaluated grid points), all held in memory at once (~36 bytes each): bounded so that
/// a large `SET starflow.draws` or manifest fails cleanly instead of exhausting memory.
pub const MAX_ROWS_PER_STAR: usize = 10_000_000;

/// `rows x points` flow rows, if that is between 1 and [`MAX_ROWS_PER_STAR`].
pub fn bounded_rows(rows: usize, points: usize) -> Option<usize> {
    rows.checked_mul(points).filter(|n| (1..=MAX_ROWS_PER_STAR).contains(n))
}

/// The flow rows of one star with `draws` draws on `grid_points` points, or why they are not allowed.
pub fn rows_per_star(draws: usize, grid_points: usize) -> Result<usize, String> {
    match bounded_rows(draws, grid_points) {
        Some(rows) => Ok(rows),
        None => Err(format!(
            "{draws} draws x {grid_points} grid points per star: draws x grid points must be between 1 and {MAX_ROWS_PER_STAR}"
        )),
    }
}
