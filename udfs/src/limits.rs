//! Bounds on the work of one star, shared by the manifest check (a model's own draws) and the session settings
//! (`starflow.draws`): kept apart from both so that neither imports the other.

/// Flow rows of one star (draws x evaluated grid points), all held in memory at once (~36 bytes each): bounded so that
/// a large `SET starflow.draws` or manifest fails cleanly instead of exhausting memory.
pub const MAX_ROWS_PER_STAR: usize = 10_000_000;

/// The flow rows of one star with `draws` draws on `grid_points` points, or why they are not allowed.
pub fn rows_per_star(draws: usize, grid_points: usize) -> Result<usize, String> {
    match draws.checked_mul(grid_points) {
        Some(rows) if rows > 0 && rows <= MAX_ROWS_PER_STAR => Ok(rows),
        _ => Err(format!(
            "{draws} draws x {grid_points} grid points per star: draws x grid points must be between 1 and {MAX_ROWS_PER_STAR}"
        )),
    }
}
