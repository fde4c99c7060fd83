namespace Histo.Pipeline;

/// <summary>An IProgress that reports on the calling thread, in order (System.Progress posts to the thread pool).</summary>
public sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
