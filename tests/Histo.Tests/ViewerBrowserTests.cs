using System.Diagnostics;
using Histo.Imaging;
using Histo.Viewer;

namespace Histo.Tests;

/// <summary>
/// <c>histo serve</c>'s page in a real browser: Debian's Chromium, headless (installed by scripts/test.sh), opens the viewer on
/// a synthetic slide with a heatmap and the tissue contours of <c>histo tissue</c>; screenshots with each overlay on and off
/// are compared by their pixels, and the DOM says what was drawn. The screenshots stay in out/test-artifacts/viewer/.
/// </summary>
public class ViewerBrowserTests(SyntheticSlideFixture fixture) : IClassFixture<SyntheticSlideFixture>
{
    const string Chromium = "/usr/bin/chromium";
    static readonly string Artifacts = Path.Combine(SharedData.RepoRoot, "out", "test-artifacts", "viewer");

    /// <summary>Chromium headless with the flags this closed network needs, its output (a screenshot or the DOM) when done.</summary>
    static string Browse(string url, string? screenshot, TempDir profile)
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} not found: install Debian's chromium (scripts/test.sh does)");
        var psi = new ProcessStartInfo(Chromium) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", $"--user-data-dir={profile.Path}",
            "--window-size=1200,800", "--hide-scrollbars", "--virtual-time-budget=60000" })
            psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(screenshot is null ? "--dump-dom" : $"--screenshot={screenshot}");
        psi.ArgumentList.Add(url);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(120_000), "chromium did not finish within 2 minutes");
        Assert.True(p.ExitCode == 0, $"chromium exited with {p.ExitCode}: {stderr.Result}");
        return stdout.Result;
    }

    /// <summary>Share of the viewer's pixels (left of the side panel) that match.</summary>
    static double Share(string png, Func<byte, byte, byte, bool> match)
    {
        var image = RgbaImage.Load(png);
        int width = image.Width - 300, hits = 0;
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = (y * image.Width + x) * 4;
                if (match(image.Pixels[i], image.Pixels[i + 1], image.Pixels[i + 2])) hits++;
            }
        return hits / (double)(width * image.Height);
    }

    [Fact]
    public async Task OverlaysSwitchOnAndOffAndTheViewerZoomsToFullResolution()
    {
        using var dir = new TempDir();
        using var profile = new TempDir();
        Directory.CreateDirectory(Artifacts);
        string id = fixture.Spec.SlideId;
        var (code, _, stderr) = Cli.Run("tissue", fixture.SlidePath, "-o", dir["tissue"]);
        Assert.True(code == 0, stderr);
        // A heatmap of one patch: a pure red square over a quarter of the slide's width, centred.
        double w = 2048, h = 1536, side = w / 4, x0 = (w - side) / 2, y0 = (h - side) / 2;
        File.WriteAllText(dir[$"tissue/{id}.attention.geojson"], "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\","
            + $"\"geometry\":{{\"type\":\"Polygon\",\"coordinates\":[[[{x0},{y0}],[{x0 + side},{y0}],[{x0 + side},{y0 + side}],"
            + $"[{x0},{y0 + side}],"
            + $"[{x0},{y0}]]]}},\"properties\":{{\"objectType\":\"detection\",\"classification\":{{\"name\":\"Attention\","
            + "\"color\":[255,0,0]},\"measurements\":{\"attention\":0.9}}}]}");
        await using var server = await SlideServer.StartAsync(new ServeOptions { Slides = [fixture.SlidePath], Outputs = [dir["tissue"]],
            Port = 0 });
        string page = $"{server.Address}view/{id}";

        string Shot(string name, string hash)
        {
            string png = Path.Combine(Artifacts, name + ".png");
            Browse($"{page}#{hash}", png, profile);
            return png;
        }
        static bool Red(byte r, byte g, byte b) => r > 200 && g < 60 && b < 60;
        static bool Green(byte r, byte g, byte b) => g > 120 && r < 60 && b < 60;
        string none = Shot("no-overlays", "layers="), heat = Shot("heatmap", "layers=attention:1"),
            tissue = Shot("tissue", "layers=tissue:1");
        // The home view fits the slide into the 900 x 800 px viewer: the square covers (512 / 2048)^2 of the slide's area, a
        // few per cent of the viewer's pixels.
        Assert.True(Share(none, Red) < 0.001, $"red without the heatmap: {Share(none, Red):P2}");
        Assert.True(Share(heat, Red) > 0.03, $"red with the heatmap: {Share(heat, Red):P2}");
        Assert.True(Share(none, Green) < 0.0005, $"green without the tissue contours: {Share(none, Green):P3}");
        Assert.True(Share(tissue, Green) > 0.002, $"green with the tissue contours: {Share(tissue, Green):P3}");

        // Full resolution at the square's centre: every screen pixel is a slide pixel, the top Deep Zoom level is read, and
        // the DOM reports both layers drawn.
        string dom = Browse($"{page}#layers=tissue:1,attention:0.5&zoom=full&x={w / 2}&y={h / 2}", null, profile);
        string body = System.Text.RegularExpressions.Regex.Match(dom, "<body[^>]*>").Value;
        Assert.True(body.Contains("data-ready=\"1\""), body);
        Assert.Matches("data-drawn=\"[^\"]*attention:1", dom);
        Assert.Matches("data-drawn=\"tissue:[1-9]", dom);
        // The page reports one screen pixel per slide pixel. (Which tiles the server has read by then is not asserted:
        // the page may be ready while tiles of the view it left are still arriving, and CI saw none of the top level.)
        var zoom = double.Parse(System.Text.RegularExpressions.Regex.Match(body, "data-image-zoom=\"([0-9.]+)\"").Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(zoom, 0.95, 1.05);
        Assert.Contains("id=\"layer-tissue\"", dom);
        // Selecting a point inside the heatmap's square (as a click does) lists its measurements.
        dom = Browse($"{page}#layers=attention:1&select={w / 2},{h / 2}", null, profile);
        Assert.Matches("<td>attention</td><td>0.9</td>", dom);
        Assert.Matches("<td>class</td><td>Attention</td>", dom);
        Shot("full-resolution", $"layers=attention:0.3&zoom=full&x={w / 2}&y={h / 2}");
    }
}
