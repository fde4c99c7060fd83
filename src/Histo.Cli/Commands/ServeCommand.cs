using System.CommandLine;
using Histo.Viewer;

namespace Histo.Cli.Commands;

static class ServeCommand
{
    public static Command Create()
    {
        var d = new ServeOptions { Slides = [] };
        var slides = new Argument<string[]>("slides") { Description = "Slide files or folders.", Arity = ArgumentArity.OneOrMore };
        var outputs = new Option<string[]>("--outputs")
        {
            Description = "Histo output folders whose files become overlays (tissue, tile, heatmap, nuclei GeoJSON; "
                + "predictions.csv and labels for the slide list).",
            AllowMultipleArgumentsPerToken = true,
        };
        var port = PretrainCommand.With("--port", "Port (0: any free one).", d.Port);
        var host = PretrainCommand.With("--host", "Address to listen on; anything but loopback needs the printed token.", d.Host);
        var command = new Command("serve", "Slides in the browser, zoomable to full resolution, with Histo's outputs as overlays.")
        {
            slides, outputs, port, host,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var options = new ServeOptions
            {
                Slides = parse.GetValue(slides)!, Outputs = parse.GetValue(outputs) ?? [], Port = parse.GetValue(port),
                Host = parse.GetValue(host)!,
            };
            using var stop = new CancellationTokenSource();
            Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
            var server = SlideServer.StartAsync(options, Console.WriteLine).GetAwaiter().GetResult();
            try
            {
                string url = server.Address.ToString().TrimEnd('/') + "/" + (server.Token is null ? "" : $"?token={server.Token}");
                Console.WriteLine($"Serving {server.Catalog.Slides.Count} slide(s) at {url}  (Ctrl+C stops)");
                if (server.Token is not null)
                    Console.WriteLine($"Listening on {options.Host}: every request needs the token above (or header "
                        + $"{SlideServer.TokenHeader})");
                try { server.WaitForShutdownAsync(stop.Token).GetAwaiter().GetResult(); }
                catch (OperationCanceledException) { }
            }
            finally { server.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
            return 0;
        }));
        return command;
    }
}
