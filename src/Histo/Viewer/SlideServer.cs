using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.RateLimiting;
using Histo.IO;
using Histo.Slides;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Histo.Viewer;

/// <summary>Options of <c>histo serve</c>.</summary>
public sealed record ServeOptions
{
    public required IReadOnlyList<string> Slides { get; init; }
    public IReadOnlyList<string> Outputs { get; init; } = [];
    public int Port { get; init; } = 8080;
    /// <summary>Loopback by default; any other address serves only requests that carry <see cref="SlideServer.Token"/>.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>Most bytes of encoded tiles kept in memory.</summary>
    public long TileCacheBytes { get; init; } = 256L << 20;
    /// <summary>Tiles read and encoded at once (the rest wait; a cancelled request stops waiting).</summary>
    public int Workers { get; init; } = Math.Max(2, Environment.ProcessorCount);
    /// <summary>Requests per second over all clients, with bursts of twice that queued.</summary>
    public int RequestsPerSecond { get; init; } = 2000;
    public int JpegQuality { get; init; } = 85;

    public void Validate()
    {
        Require.InRange("--port", Port, 0, 65535);
        Require.AtLeast("--workers", Workers, 1);
        if (!IPAddress.TryParse(Host, out _) && Host != "localhost")
            throw new UsageException($"--host '{Host}': give an IP address to listen on (127.0.0.1, 0.0.0.0, ...)");
    }
}

/// <summary>
/// <c>histo serve</c>: slides in the browser, zoomable to full resolution (Deep Zoom tiles from OpenSlide, OpenSeadragon pages),
/// with Histo's outputs as overlays. Only the slides and output folders it was given are served, by slide id and overlay
/// name, never by a path from the URL; on an address other than loopback every request needs the printed token.
/// </summary>
public sealed class SlideServer : IAsyncDisposable
{
    public const string TokenCookie = "histo_token", TokenHeader = "X-Histo-Token";

    readonly WebApplication _app;
    readonly SlideCatalog _catalog;
    readonly ServeOptions _options;
    readonly ConcurrentDictionary<string, Lazy<OpenedSlide>> _opened = new();
    readonly MemoryCache _tiles;
    readonly SemaphoreSlim _workers;
    readonly Dictionary<string, (string Path, string ContentType)> _static;

    public Uri Address { get; private set; } = null!;
    /// <summary>The token requests must carry (query <c>token</c>, the cookie it sets, or the header); null on loopback.</summary>
    public string? Token { get; }
    public SlideCatalog Catalog => _catalog;
    /// <summary>Tiles read from slides (not from the cache) per Deep Zoom level, over the server's life.</summary>
    public IReadOnlyDictionary<int, int> TilesRead => _tilesRead;
    readonly ConcurrentDictionary<int, int> _tilesRead = new();

    sealed record OpenedSlide(WholeSlide? Slide, DeepZoomPyramid? Pyramid, string? Error, string ETagStem);

    SlideServer(ServeOptions options, SlideCatalog catalog)
    {
        _options = options;
        _catalog = catalog;
        _tiles = new MemoryCache(new MemoryCacheOptions { SizeLimit = options.TileCacheBytes });
        _workers = new SemaphoreSlim(options.Workers);
        Token = IsLoopback(options.Host) ? null : Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant();
        _static = StaticFiles();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = 0; // GET only
            k.Limits.MaxRequestLineSize = 4096;
            k.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
            k.Limits.MaxConcurrentConnections = 2048;
            k.Listen(options.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(options.Host), options.Port);
        });
        _app = builder.Build();
        var limiter = new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = options.RequestsPerSecond, TokensPerPeriod = options.RequestsPerSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = options.RequestsPerSecond * 2, QueueProcessingOrder = QueueProcessingOrder.OldestFirst, AutoReplenishment = true,
        });
        _app.Use(async (context, next) =>
        {
            using var lease = await limiter.AcquireAsync(1, context.RequestAborted);
            if (!lease.IsAcquired) { context.Response.StatusCode = StatusCodes.Status429TooManyRequests; return; }
            if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
            {
                context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
                return;
            }
            if (Token is not null && !Authorised(context)) { context.Response.StatusCode = StatusCodes.Status401Unauthorized; return; }
            context.Response.Headers["X-Content-Type-Options"] = "nosniff";
            await next(context);
        });
        MapRoutes(_app);
    }

    public static async Task<SlideServer> StartAsync(ServeOptions options, Action<string>? log = null)
    {
        options.Validate();
        var catalog = SlideCatalog.Build(options.Slides, options.Outputs, log);
        var server = new SlideServer(options, catalog);
        await server._app.StartAsync();
        var address = server._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Address = new Uri(address.Replace("0.0.0.0", "127.0.0.1").Replace("[::]", "localhost"));
        return server;
    }

    public Task WaitForShutdownAsync(CancellationToken cancel) => Microsoft.Extensions.Hosting.HostingAbstractionsHostExtensions
        .WaitForShutdownAsync(_app, cancel);

    static bool IsLoopback(string host) => host == "localhost" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));

    bool Authorised(HttpContext context)
    {
        static bool Same(string? a, string b) => a is not null && a.Length == b.Length
            && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(a), Encoding.ASCII.GetBytes(b));
        string token = Token!;
        if (Same(context.Request.Headers[TokenHeader].FirstOrDefault(), token)) return true;
        if (Same(context.Request.Cookies[TokenCookie], token)) return true;
        if (!Same(context.Request.Query["token"].FirstOrDefault(), token)) return false;
        // The page's own requests (tiles, overlays) then carry the cookie.
        context.Response.Cookies.Append(TokenCookie, token, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict });
        return true;
    }

    /// <summary>The page's files: OpenSeadragon (fetched from npm at build time) and Histo's own, by name.</summary>
    static Dictionary<string, (string, string)> StaticFiles()
    {
        string root = Path.Combine(AppContext.BaseDirectory, "viewer");
        var files = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
        if (!Directory.Exists(root)) throw new HistoException($"{root}: the viewer's files are missing; rebuild Histo (scripts/setup.sh)");
        foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
        {
            string name = Path.GetRelativePath(root, file).Replace(Path.DirectorySeparatorChar, '/');
            string type = Path.GetExtension(file) switch
            {
                ".js" => "text/javascript", ".css" => "text/css", ".png" => "image/png", ".html" => "text/html", _ => "text/plain",
            };
            files[name] = (file, type + (type.StartsWith("text/") ? "; charset=utf-8" : ""));
        }
        return files;
    }

    void MapRoutes(WebApplication app)
    {
        app.MapGet("/", () => Results.Content(Pages.Index(_catalog), "text/html; charset=utf-8"));
        app.MapGet("/view/{id}", (string id) => _catalog.Find(id) is { } s
            ? (Open(s).Error is { } error
                ? Results.Content(Pages.Error(s.Id, error), "text/html; charset=utf-8", statusCode: 500)
                : Results.Content(Pages.Viewer(s), "text/html; charset=utf-8"))
            : Results.NotFound());
        app.MapGet("/static/{**name}", (string name) => _static.TryGetValue(name, out var f)
            ? Results.File(f.Path, f.ContentType) : Results.NotFound());
        app.MapGet("/api/slides", () => Results.Json(_catalog.Slides.Select(s => Summary(s))));
        app.MapGet("/api/slides/{id}", (string id) => WithSlide(id, (s, o) => Results.Json(Details(s, o))));
        app.MapGet("/api/slides/{id}/overlays/{name}", (string id, string name, HttpContext http) => WithSlide(id, (s, _) =>
            s.Overlays.FirstOrDefault(o => o.Name == name) is { } overlay ? Overlay(overlay, http) : Results.NotFound()));
        app.MapGet("/dz/{id}.dzi", (string id) => WithSlide(id, (_, o) => Results.Content(o.Pyramid!.Dzi(), "application/xml")));
        app.MapGet("/dz/{id}_files/{level:int}/{col:int}_{row:int}.jpeg",
            (string id, int level, int col, int row, HttpContext http) => TileAsync(id, level, col, row, http));
        app.MapGet("/thumb/{id}.jpeg", (string id, HttpContext http) => WithSlide(id, (s, o) =>
        {
            // The first Deep Zoom level that fills 256 px, one tile: no associated image is needed.
            int level = Enumerable.Range(0, o.Pyramid!.LevelCount).First(l => Math.Max(o.Pyramid.LevelSize(l).Width,
                o.Pyramid.LevelSize(l).Height) >= 200 || l == o.Pyramid.LevelCount - 1);
            return Results.Redirect($"/dz/{Uri.EscapeDataString(s.Id)}_files/{level}/0_0.jpeg");
        }));
    }

    OpenedSlide Open(CatalogSlide s) => _opened.GetOrAdd(s.Id, _ => new Lazy<OpenedSlide>(() =>
    {
        var file = new FileInfo(s.Path);
        string stem = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(
            $"{s.Path}|{(file.Exists ? file.Length : 0)}|{(file.Exists ? file.LastWriteTimeUtc.Ticks : 0)}")))[..16];
        try
        {
            var slide = WholeSlide.Open(s.Path);
            return new OpenedSlide(slide, new DeepZoomPyramid(slide), null, stem);
        }
        catch (HistoException e) { return new OpenedSlide(null, null, e.Message, stem); }
    })).Value;

    /// <summary>A slide's request, or 404 for an unknown id, or 422 with OpenSlide's message for a slide that does not open.</summary>
    IResult WithSlide(string id, Func<CatalogSlide, OpenedSlide, IResult> action)
    {
        if (_catalog.Find(id) is not { } s) return Results.NotFound();
        var opened = Open(s);
        return opened.Error is { } error
            ? Results.Json(new { error }, statusCode: StatusCodes.Status422UnprocessableEntity)
            : action(s, opened);
    }

    readonly ConcurrentDictionary<string, Task<byte[]>> _reading = new();

    /// <summary>Reads and encodes a tile on one of the bounded workers (waiting for one stops if its requester goes away).</summary>
    async Task<byte[]> ReadTileAsync(string key, DeepZoomPyramid pyramid, int level, int col, int row, CancellationToken cancel)
    {
        try
        {
            await _workers.WaitAsync(cancel);
            try
            {
                cancel.ThrowIfCancellationRequested();
                // A read that finished between this request's cache miss and its start has left the tile in the cache.
                if (_tiles.TryGetValue(key, out byte[]? cached)) return cached!;
                var jpeg = await Task.Run(() => pyramid.ReadTile(level, col, row).EncodeJpeg(_options.JpegQuality), CancellationToken.None);
                _tilesRead.AddOrUpdate(level, 1, (_, n) => n + 1);
                _tiles.Set(key, jpeg, new MemoryCacheEntryOptions { Size = jpeg.Length });
                return jpeg;
            }
            finally { _workers.Release(); }
        }
        finally { _reading.TryRemove(key, out _); }
    }

    async Task<IResult> TileAsync(string id, int level, int col, int row, HttpContext http)
    {
        if (_catalog.Find(id) is not { } s) return Results.NotFound();
        var opened = Open(s);
        if (opened.Error is { } error) return Results.Json(new { error }, statusCode: StatusCodes.Status422UnprocessableEntity);
        if (!opened.Pyramid!.Contains(level, col, row)) return Results.NotFound();
        string etag = $"\"{opened.ETagStem}-{level}-{col}-{row}\"";
        http.Response.Headers.ETag = etag;
        http.Response.Headers.CacheControl = Token is null ? "public, max-age=86400" : "private, max-age=86400";
        if (http.Request.Headers.IfNoneMatch.Contains(etag)) return Results.StatusCode(StatusCodes.Status304NotModified);
        string key = $"{id}/{level}/{col}/{row}";
        var cancel = http.RequestAborted;
        byte[]? jpeg;
        while (!_tiles.TryGetValue(key, out jpeg))
        {
            // One read per tile however many requests want it at once: the first starts it, the others wait for it.
            var read = _reading.GetOrAdd(key, _ => ReadTileAsync(key, opened.Pyramid, level, col, row, cancel));
            try
            {
                jpeg = await read.WaitAsync(cancel);
                break;
            }
            catch (Exception e) when (e is OperationCanceledException or HistoException)
            {
                // A read that failed or whose starter went away (it may have ended before it was stored): never reused.
                _reading.TryRemove(new KeyValuePair<string, Task<byte[]>>(key, read));
                if (cancel.IsCancellationRequested) return Results.StatusCode(499);
                if (e is HistoException) return Results.Json(new { error = e.Message }, statusCode: 422);
            }
        }
        return Results.Bytes(jpeg!, "image/jpeg");
    }

    static object Summary(CatalogSlide s) => new
    {
        id = s.Id, label = s.Label, predicted = s.Predicted, overlays = s.Overlays.Select(o => new { name = o.Name, kind = o.Kind }),
    };

    static object Details(CatalogSlide s, OpenedSlide o)
    {
        var slide = o.Slide!;
        return new
        {
            id = s.Id, width = slide.Width, height = slide.Height, vendor = slide.Vendor, mpp = slide.Mpp?.X,
            objectivePower = slide.ObjectivePower, levels = slide.Levels.Select(l => new { width = l.Width, height = l.Height,
                downsample = l.Downsample }),
            label = s.Label, predicted = s.Predicted, probabilities = s.Probabilities,
            overlays = s.Overlays.Select(x => new { name = x.Name, kind = x.Kind }),
        };
    }

    /// <summary>A GeoJSON overlay as it is on disk, or a tile grid made from coords/&lt;id&gt;.h5 as QuPath tiles.</summary>
    static IResult Overlay(SlideOverlay overlay, HttpContext http)
    {
        if (overlay.Kind != "tiles") return Results.File(overlay.Path, "application/geo+json");
        PatchCoordinates coords;
        try { coords = PatchCoordinates.Read(overlay.Path); }
        catch (HistoException e) { return Results.Json(new { error = e.Message }, statusCode: 422); }
        return Results.Stream(async stream =>
        {
            await using var text = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16);
            var writer = new GeoJson.Writer(text);
            double side = coords.PatchSizeLevel0;
            for (int k = 0; k < coords.Count; k++)
            {
                double x = coords.Coords[k, 0], y = coords.Coords[k, 1];
                writer.Add(new GeoJson.Feature([[(x, y), (x + side, y), (x + side, y + side), (x, y + side)]], "Tile", (80, 160, 255),
                    "tile", new Dictionary<string, double> { ["x"] = x, ["y"] = y, ["patch"] = k }));
            }
            writer.Close();
            await text.FlushAsync();
        }, "application/geo+json");
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        foreach (var lazy in _opened.Values) if (lazy.IsValueCreated) lazy.Value.Slide?.Dispose();
        _tiles.Dispose();
        _workers.Dispose();
    }
}
