namespace Histo;

/// <summary>
/// An error caused by the user's input (a missing, corrupt or unsupported file, a wrong CSV, a bad
/// option). Its message is one line that names the file and says what to do; the CLI prints it without
/// a stack trace and exits non-zero.
/// </summary>
public class HistoException(string message, Exception? inner = null) : Exception(message, inner);
