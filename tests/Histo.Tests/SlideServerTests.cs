using System.Net;
using Histo.Imaging;
using Histo.Slides;
using Histo.Viewer;

namespace Histo.Tests;

/// <summary><c>histo serve</c> over HTTP: tiles, overlays, the slide list, and what it refuses.</summary>
public class SlideServerTests(SyntheticSlideFixture fixture) : IClassFixture<SyntheticSlideFixture>
{
    string SlideId => fixture.Spec.SlideId;

    static async Task<SlideServer> Start(IReadOnlyList<string> slides, IReadOnlyList<string>? outputs = null, string host = "127.0.0.1") =>
        await SlideServer.StartAsync(new ServeOptions { Slides = slides, Outputs = outputs ?? [], Port = 0, Host = host });

    static HttpClient Client(SlideServer server) => new() { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(2) };

    [Fact]
    public async Task TilesAreTheSlidesRegionsResizedWithCachingHeaders()
    {
        await using var server = await Start([fixture.SlidePath]);
        using var http = Client(server);
        using var slide = WholeSlide.Open(fixture.SlidePath);
        var pyramid = new DeepZoomPyramid(slide);
        int top = pyramid.LevelCount - 1;
        // Full resolution (an inner and the bottom-right edge tile), one level down, and a small level near the top.
        foreach (var (level, col, row) in new[] { (top, 1, 1), (top, pyramid.TileGrid(top).Cols - 1, pyramid.TileGrid(top).Rows - 1),
            (top - 1, 0, 0), (top - 3, 0, 0) })
        {
            var response = await http.GetAsync($"/dz/{SlideId}_files/{level}/{col}_{row}.jpeg");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("image/jpeg", response.Content.Headers.ContentType!.MediaType);
            string path = Path.GetTempFileName();
            try
            {
                File.WriteAllBytes(path, await response.Content.ReadAsByteArrayAsync());
                var tile = RgbaImage.Load(path);
                // The same region read at level 0 and resized: where the tile starts (one overlap pixel before it, but not
                // on the first row or column) and how much level-0 it covers.
                double d = pyramid.Downsample(level);
                long x0 = (long)((col * 254 - (col > 0 ? 1 : 0)) * d), y0 = (long)((row * 254 - (row > 0 ? 1 : 0)) * d);
                var expected = slide.ReadRegion(x0, y0, 0, (int)Math.Round(tile.Width * d), (int)Math.Round(tile.Height * d))
                    .Resize(tile.Width, tile.Height);
                double mad = tile.Pixels.Where((_, i) => i % 4 != 3).Zip(expected.Pixels.Where((_, i) => i % 4 != 3),
                    (a, b) => (double)Math.Abs(a - b)).Average();
                Assert.True(mad < 4, $"level {level} tile ({col}, {row}): mean absolute difference {mad:0.00} (JPEG quality 85)");
            }
            finally { File.Delete(path); }
            var etag = response.Headers.ETag!;
            Assert.Contains("max-age", response.Headers.CacheControl!.ToString());
            using var again = new HttpRequestMessage(HttpMethod.Get, $"/dz/{SlideId}_files/{level}/{col}_{row}.jpeg");
            again.Headers.IfNoneMatch.Add(etag);
            Assert.Equal(HttpStatusCode.NotModified, (await http.SendAsync(again)).StatusCode);
        }
        var dzi = await http.GetStringAsync($"/dz/{SlideId}.dzi");
        Assert.Contains($"Width=\"{slide.Width}\" Height=\"{slide.Height}\"", dzi);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"/dz/{SlideId}_files/{top + 1}/0_0.jpeg")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"/dz/{SlideId}_files/{top}/99_0.jpeg")).StatusCode);
    }

    [Fact]
    public async Task NoPathFromAUrlReachesTheFileSystem()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir["out"]);
        File.WriteAllText(dir["secret.txt"], "not for the browser");
        // A link named like an overlay that leads out of the output folder is not served; one that stays inside is.
        File.CreateSymbolicLink(dir[$"out/{SlideId}.tissue.geojson"], dir["secret.txt"]);
        File.WriteAllText(dir["out/inside.json"], "{\"type\":\"FeatureCollection\",\"features\":[]}");
        File.CreateSymbolicLink(dir[$"out/{SlideId}.cells.geojson"], dir["out/inside.json"]);
        await using var server = await Start([fixture.SlidePath], [dir["out"]]);
        Assert.Equal(["cells"], server.Catalog.Find(SlideId)!.Overlays.Select(o => o.Name));
        using var http = Client(server);
        string secret = Uri.EscapeDataString(dir["secret.txt"]);
        foreach (var url in new[]
        {
            "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/..%2F..%2F..%2Fetc%2Fpasswd",
            "/static//etc/passwd", $"/static/{secret}", "/view/..%2F..%2Fetc%2Fpasswd", $"/view/{secret}", $"/dz/{secret}.dzi",
            "/dz/..%2F..%2Fetc%2Fpasswd.dzi", $"/api/slides/{SlideId}/overlays/..%2F..%2Fsecret.txt",
            $"/api/slides/{SlideId}/overlays/tissue",
            "/api/slides/%2Fetc%2Fpasswd", $"/dz/{SlideId}_files/0/..%2F0_0.jpeg",
        })
        {
            var response = await http.GetAsync(url);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{url}: {response.StatusCode}");
            Assert.DoesNotContain("not for the browser", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"/api/slides/{SlideId}/overlays/cells")).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await http.PostAsync("/", new StringContent("x"))).StatusCode);
    }

    [Fact]
    public async Task OffLoopbackEveryRequestNeedsTheToken()
    {
        await using var server = await Start([fixture.SlidePath], host: "0.0.0.0");
        Assert.NotNull(server.Token);
        var url = new Uri($"http://127.0.0.1:{server.Address.Port}/");
        using (var bare = new HttpClient { BaseAddress = url })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await bare.GetAsync("/")).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await bare.GetAsync($"/dz/{SlideId}.dzi")).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await bare.GetAsync("/?token=wrong")).StatusCode);
            using var withHeader = new HttpRequestMessage(HttpMethod.Get, $"/dz/{SlideId}.dzi");
            withHeader.Headers.Add(SlideServer.TokenHeader, server.Token);
            Assert.Equal(HttpStatusCode.OK, (await bare.SendAsync(withHeader)).StatusCode);
        }
        // The token in the page's address sets a cookie, which then carries the page's tile requests.
        var cookies = new CookieContainer();
        using var browser = new HttpClient(new HttpClientHandler { CookieContainer = cookies }) { BaseAddress = url };
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync($"/view/{SlideId}?token={server.Token}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync($"/dz/{SlideId}_files/0/0_0.jpeg")).StatusCode);
    }

    [Fact]
    public async Task ACorruptSlideGetsAnErrorPageAndTheServerGoesOn()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["broken.svs"], Enumerable.Range(0, 4096).Select(i => (byte)(i * 7)).ToArray());
        await using var server = await Start([fixture.SlidePath, dir["broken.svs"]]);
        using var http = Client(server);
        var page = await http.GetAsync("/view/broken");
        Assert.Equal(HttpStatusCode.InternalServerError, page.StatusCode);
        Assert.Contains("broken cannot be shown", await page.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await http.GetAsync("/dz/broken_files/0/0_0.jpeg")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"/dz/{SlideId}_files/0/0_0.jpeg")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/")).StatusCode);

        // A slide that is not there, or an output folder that is not, is one line and exit 1 before anything listens.
        var (code, _, stderr) = Cli.Run("serve", dir["missing.svs"], "--port", "0");
        Assert.Equal(1, code);
        Assert.Contains("missing.svs: slide not found", stderr);
        (code, _, stderr) = Cli.Run("serve", fixture.SlidePath, "--outputs", dir["nope"], "--port", "0");
        Assert.Equal(1, code);
        Assert.Contains("output folder not found", stderr);
        (code, _, _) = Cli.Run("serve", fixture.SlidePath, "--host", "not-an-address");
        Assert.Equal(2, code);
    }

    [Fact]
    public async Task AThousandConcurrentTileRequestsAllSucceedInBoundedMemory()
    {
        await using var server = await Start([fixture.SlidePath]);
        using var http = Client(server);
        using var slide = WholeSlide.Open(fixture.SlidePath);
        var pyramid = new DeepZoomPyramid(slide);
        var urls = Enumerable.Range(pyramid.LevelCount - 4, 4).SelectMany(level =>
        {
            var (cols, rows) = pyramid.TileGrid(level);
            return Enumerable.Range(0, cols * rows).Select(i => $"/dz/{SlideId}_files/{level}/{i % cols}_{i / cols}.jpeg");
        }).ToList();
        long before = Environment.WorkingSet;
        var requests = Enumerable.Range(0, 1000).Select(i => http.GetAsync(urls[i % urls.Count])).ToList();
        var responses = await Task.WhenAll(requests);
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        long grown = Environment.WorkingSet - before;
        // Every distinct tile is read once; the rest are served from the cache.
        Assert.Equal(urls.Count, server.TilesRead.Values.Sum());
        Assert.True(grown < 400L << 20, $"working set grew by {grown >> 20} MB");
        foreach (var r in responses) r.Dispose();
    }

    [Fact]
    public async Task TheSlideListShowsLabelsAndPredictionsFromTheOutputs()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir["run"]);
        File.WriteAllText(dir["labels.csv"], $"case_id,slide_id,label\nc1,{SlideId},tumour\n");
        File.WriteAllText(dir["run/predictions.csv"], $"slide_id,predicted,p_normal,p_tumour\n{SlideId},tumour,0.1,0.9\n");
        // Other files named after the slide are not overlays (histo synth writes <id>.json beside each slide), unless they are
        // FeatureCollections.
        File.WriteAllText(dir[$"run/{SlideId}.json"], "{\"subtype\":\"solid\"}");
        File.WriteAllText(dir[$"run/{SlideId}.regions.json"], "{\"type\":\"FeatureCollection\",\"features\":[]}");
        await using var server = await Start([fixture.SlidePath], [dir.Path, dir["run"]]); // nested: each file once
        using var http = Client(server);
        string index = await http.GetStringAsync("/");
        Assert.Contains("label <b>tumour</b>", index);
        Assert.Contains("prediction right\">predicted <b>tumour</b> (0.90)", index);
        Assert.Equal(["regions"], server.Catalog.Find(SlideId)!.Overlays.Select(o => o.Name));
        string details = await http.GetStringAsync($"/api/slides/{SlideId}");
        Assert.Contains("\"probabilities\":{\"normal\":0.1,\"tumour\":0.9}", details);
    }
}
