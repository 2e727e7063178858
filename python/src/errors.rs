//! starflow's error classes as Python exceptions: one class per class of `starflow::error::ErrorClass` (the CLI's exit
//! codes), each carrying the CLI's one-line message. Ctrl-C is Python's own `KeyboardInterrupt`.

use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;
use pyo3::types::PyType;
use starflow::error::{CliError, ErrorClass};

pyo3::create_exception!(starflow, StarflowError, PyException, "A starflow error; `exit_code` is the CLI's for its class.");
pyo3::create_exception!(starflow, UsageError, StarflowError, "A bad argument or option (the CLI's exit code 2).");
pyo3::create_exception!(starflow, SQLError, StarflowError, "The query is wrong: syntax, unknown table, column or function, types (exit code 3).");
pyo3::create_exception!(starflow, DataError, StarflowError, "Reading input failed: missing or unreadable file, store or model (exit code 4).");
pyo3::create_exception!(starflow, OutputError, StarflowError, "Writing output failed (exit code 5).");
pyo3::create_exception!(starflow, EngineError, StarflowError, "Any other failure while running (exit code 1).");

/// The exception classes with their exit codes, as the module exports them.
pub fn add_to(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let classes: [(Bound<'_, PyType>, ErrorClass); 5] = [
        (py.get_type::<UsageError>(), ErrorClass::Usage),
        (py.get_type::<SQLError>(), ErrorClass::Sql),
        (py.get_type::<DataError>(), ErrorClass::Data),
        (py.get_type::<OutputError>(), ErrorClass::Output),
        (py.get_type::<EngineError>(), ErrorClass::Runtime),
    ];
    module.add("StarflowError", py.get_type::<StarflowError>())?;
    for (class, code) in classes {
        class.setattr("exit_code", code as i32)?;
        module.add(class.name()?, class)?;
    }
    Ok(())
}

/// The Python exception of a starflow error: its class's exception with the CLI's line (`SQL error: ...`).
pub fn to_py(e: CliError) -> PyErr {
    let line = e.to_string();
    match e.class {
        ErrorClass::Usage => UsageError::new_err(line),
        ErrorClass::Sql => SQLError::new_err(line),
        ErrorClass::Data => DataError::new_err(line),
        ErrorClass::Output => OutputError::new_err(line),
        ErrorClass::Runtime => EngineError::new_err(line),
        ErrorClass::Interrupted => PyKeyboardInterrupt::new_err(line),
    }
}
