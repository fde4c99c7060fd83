using Spectre.Console;

namespace Histo.Cli;

/// <summary>One Spectre.Console progress bar over a batch of slides (plain "task: N%" lines when not a terminal).</summary>
static class Progress
{
    /// <summary>Runs <paramref name="work"/>, which reports (item, fraction of that item done) as it goes.</summary>
    public static void Run(string title, int items, Action<Action<string, double>> work)
    {
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title, maxValue: Math.Max(items, 1));
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
                        task.Description = $"{title} [grey]{Markup.Escape(item)}[/]";
                    }
                });
                task.Value = task.MaxValue;
            });
    }
}

