namespace Histo;

/// <summary>
/// An error caused by the user's input (a missing, corrupt or unsupported file, a wrong CSV, a slide that
/// fails). Its message is one line that names the file and says what to do; the CLI prints it without a
/// stack trace and exits 1 (a processing failure).
/// </summary>
public class HistoException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A usage error: an option value or combination the command cannot run with (a negative learning rate,
/// --head coral with --task subtype). Caught before any work starts; the CLI exits 2, as for a parse error.
/// </summary>
public class UsageException(string message) : HistoException(message);
