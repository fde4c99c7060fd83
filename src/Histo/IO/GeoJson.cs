using System.Globalization;
using System.Text;

namespace Histo.IO;

/// <summary>
/// GeoJSON FeatureCollections in level-0 pixel coordinates, the form QuPath imports (File > Import objects)
/// and exports: each feature carries QuPath's <c>objectType</c> and <c>classification</c> properties.
/// </summary>
public static class GeoJson
{
    /// <summary>A polygon feature: rings[0] is the outer ring, the rest are holes (rings are closed on output). A QuPath cell
    /// (objectType "cell") has the cell as its geometry and its nucleus as <paramref name="NucleusRings"/>, written as the
    /// feature's <c>nucleusGeometry</c> member, where QuPath writes and reads it.</summary>
    public sealed record Feature(IReadOnlyList<(double X, double Y)[]> Rings, string ClassName, (int R, int G, int B) Color,
        string ObjectType = "annotation", IReadOnlyDictionary<string, double>? Measurements = null,
        IReadOnlyList<(double X, double Y)[]>? NucleusRings = null);

    public static string FeatureCollection(IEnumerable<Feature> features)
    {
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        var writer = new Writer(text);
        foreach (var f in features) writer.Add(f);
        writer.Close();
        return text.ToString();
    }

    /// <summary>A FeatureCollection written feature by feature, so a slide's million nuclei never sit in memory together.</summary>
    public sealed class Writer
    {
        readonly TextWriter _out;
        bool _first = true, _closed;

        public Writer(TextWriter output)
        {
            _out = output;
            _out.Write("{\"type\":\"FeatureCollection\",\"features\":[");
        }

        public void Add(Feature f)
        {
            var sb = new StringBuilder();
            if (!_first) sb.Append(',');
            _first = false;
            sb.Append("{\"type\":\"Feature\",\"geometry\":");
            Polygon(sb, f.Rings);
            if (f.NucleusRings is not null)
            {
                sb.Append(",\"nucleusGeometry\":");
                Polygon(sb, f.NucleusRings);
            }
            sb.Append(",\"properties\":{\"objectType\":\"").Append(f.ObjectType).Append("\",\"classification\":{\"name\":\"")
              .Append(f.ClassName).Append("\",\"color\":[")
                .Append(f.Color.R).Append(',').Append(f.Color.G).Append(',').Append(f.Color.B).Append("]}");
            if (f.Measurements is { Count: > 0 })
            {
                sb.Append(",\"measurements\":{");
                sb.AppendJoin(',', f.Measurements.Select(m =>
                    $"{System.Text.Json.JsonSerializer.Serialize(m.Key)}:{Measurement(m.Value)}"));
                sb.Append('}');
            }
            sb.Append("}}");
            _out.Write(sb);
        }

        static void Polygon(StringBuilder sb, IReadOnlyList<(double X, double Y)[]> rings)
        {
            sb.Append("{\"type\":\"Polygon\",\"coordinates\":[");
            for (int r = 0; r < rings.Count; r++)
            {
                if (r > 0) sb.Append(',');
                sb.Append('[');
                var ring = rings[r];
                for (int i = 0; i <= ring.Length; i++)
                {
                    var (x, y) = ring[i % ring.Length];
                    if (i > 0) sb.Append(',');
                    sb.Append('[').Append(Num(x)).Append(',').Append(Num(y)).Append(']');
                }
                sb.Append(']');
            }
            sb.Append("]}");
        }

        /// <summary>Ends the collection (the writer itself is the caller's to flush and close).</summary>
        public void Close()
        {
            if (_closed) return;
            _out.Write("]}");
            _closed = true;
        }
    }

    /// <summary>Measurements to 4 decimals; NaN (not JSON) as null, as QuPath writes a missing value.</summary>
    static string Measurement(double v) => double.IsFinite(v) ? Math.Round(v, 4).ToString("0.####", CultureInfo.InvariantCulture) : "null";

    static string Num(double v) => Math.Round(v, 2).ToString("0.##", CultureInfo.InvariantCulture);
}
