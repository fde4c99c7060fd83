// The tests call CliRunner directly to check how an unexpected exception is reported (a bug cannot be provoked on demand).
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("Histo.Tests")]
