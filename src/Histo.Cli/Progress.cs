using Spectre.Console;

namespace Histo.Cli;

/// <summary>One Spectre.Console progress bar over a batch of slides (plain "task: N%" lines when not a terminal).</summary>
static class Progress
{
    /// <summary>Runs <paramref name="work"/>, which reports (item, fraction of that item done) as it goes;
    /// <paramref name="status"/> adds a live figure after the item (nuclei/s, for example).</summary>
    public static void Run(string title, int items, Action<Action<string, double>> work, Func<string>? status = null)
    {
        // Redrawn from the reporting thread, not Spectre's refresh thread: a thread that allocates while another is inside
        // a TorchSharp call can trigger the collection that frees that call's temporary Scalar (README, Platform notes).
        AnsiConsole.Progress()
            .AutoClear(false)
            .AutoRefresh(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title, maxValue: Math.Max(items, 1));
                var refresh = Throttled(ctx);
                var done = new HashSet<string>();
                string? current = null;
                double currentFraction = 0;
                object gate = new();
                work((item, fraction) =>
                {
                    lock (gate)
                    {
                        if (current != item && current is not null) done.Add(current);
                        current = item;
                        currentFraction = fraction >= 1 ? 0 : fraction;
                        if (fraction >= 1) { done.Add(item); current = null; }
                        task.Value = done.Count + currentFraction;
                        task.Description = $"{title} [grey]{Markup.Escape(item)}[/]"
                            + (status is null ? "" : $" {Markup.Escape(status())}");
                        refresh();
                    }
                });
                task.Value = task.MaxValue;
            });
    }

    /// <summary>
    /// One bar over iterations of a training run: <paramref name="work"/> reports (done, total, what to show after the title),
    /// e.g. the epoch and the loss terms; the bar ends full.
    /// </summary>
    public static void Training(string title, Action<Action<long, long, string>> work)
    {
        AnsiConsole.Progress().AutoClear(false).AutoRefresh(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(),
                new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title, maxValue: 1);
                var refresh = Throttled(ctx); // no refresh thread: see Run
                work((done, total, status) =>
                {
                    task.MaxValue = Math.Max(total, 1);
                    task.Value = done;
                    task.Description = $"{title} [grey]{status}[/]";
                    refresh();
                });
                task.Value = task.MaxValue;
                ctx.Refresh();
            });
    }

    /// <summary>
    /// Redraws <paramref name="ctx"/> at most ten times a second, on the calling thread: the progress bars here run with
    /// AutoRefresh(false) so that no refresh thread allocates while the work is inside TorchSharp (see above).
    /// </summary>
    public static Action Throttled(ProgressContext ctx)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        return () =>
        {
            if (clock.ElapsedMilliseconds < 100) return;
            ctx.Refresh();
            clock.Restart();
        };
    }
}
