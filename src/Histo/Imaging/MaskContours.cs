namespace Histo.Imaging;

/// <summary>
/// Traces the boundaries of a binary mask as polygons along pixel edges ("crack following"), so the
/// polygons cover exactly the mask's pixels. Pixels that touch only at a corner are kept as separate
/// rings, so every ring is simple and every polygon valid for GeoJSON/QuPath.
/// </summary>
public static class MaskContours
{
    // Directions in image coordinates (y down): 0 east, 1 south, 2 west, 3 north.
    static readonly int[] Dx = [1, 0, -1, 0], Dy = [0, 1, 0, -1];

    /// <summary>Polygons, each an outer ring followed by its holes; vertices in mask-pixel corner coordinates.</summary>
    public static List<List<(double X, double Y)[]>> Trace(byte[] mask, int width, int height)
    {
        int vw = width + 1;
        // Outgoing boundary edges per vertex, as a bit per direction; tissue lies to the right of each edge.
        var edges = new byte[vw * (height + 1)];
        bool On(int x, int y) => x >= 0 && y >= 0 && x < width && y < height && mask[y * width + x] != 0;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                if (!On(x, y)) continue;
                if (!On(x, y - 1)) edges[y * vw + x] |= 1 << 0;           // top: (x,y) -> (x+1,y) east
                if (!On(x + 1, y)) edges[y * vw + x + 1] |= 1 << 1;       // right: (x+1,y) -> (x+1,y+1) south
                if (!On(x, y + 1)) edges[(y + 1) * vw + x + 1] |= 1 << 2; // bottom: (x+1,y+1) -> (x,y+1) west
                if (!On(x - 1, y)) edges[(y + 1) * vw + x] |= 1 << 3;     // left: (x,y+1) -> (x,y) north
            }
        var outers = new List<(double X, double Y)[]>();
        var holes = new List<((double X, double Y)[] Ring, (double X, double Y) Inside)>();
        for (int start = 0; start < edges.Length; start++)
        {
            while (edges[start] != 0)
            {
                int startDir = System.Numerics.BitOperations.TrailingZeroCount(edges[start]);
                var ring = new List<(double X, double Y)>();
                int v = start, dir = startDir;
                while (true)
                {
                    edges[v] &= (byte)~(1 << dir);
                    int x = v % vw, y = v / vw;
                    if (ring.Count == 0 || Turns(ring, x, y)) ring.Add((x, y));
                    else ring[^1] = (x, y);
                    int nv = (y + Dy[dir]) * vw + x + Dx[dir];
                    // Back at the start: closed, unless the start is a corner contact and the rule leads on.
                    if (nv == start && TurnRightOrStraight(edges[nv] | (1 << startDir), dir) == startDir) break;
                    dir = TurnRightOrStraight(edges[nv], dir);
                    v = nv;
                }
                // Drop collinear closing vertices.
                var simplified = Simplify(ring);
                if (simplified.Length < 3) continue;
                if (SignedArea(simplified) > 0) outers.Add(simplified);
                else
                {
                    // The pixel left of the first edge is a hole pixel: its centre is strictly inside the hole.
                    int x0 = start % vw, y0 = start / vw;
                    var inside = startDir switch
                    {
                        0 => (x0 + 0.5, y0 - 0.5), 1 => (x0 + 0.5, y0 + 0.5), 2 => (x0 - 0.5, y0 + 0.5), _ => (x0 - 0.5, y0 - 0.5),
                    };
                    holes.Add((simplified, inside));
                }
            }
        }
        var polygons = outers.Select(o => new List<(double X, double Y)[]> { o }).ToList();
        foreach (var (ring, inside) in holes)
        {
            // A hole belongs to the smallest outer ring that contains it.
            var owner = polygons.Where(p => Contains(p[0], inside)).OrderBy(p => Math.Abs(SignedArea(p[0]))).FirstOrDefault();
            owner?.Add(ring);
        }
        return polygons;
    }

    static bool Turns(List<(double X, double Y)> ring, int x, int y)
    {
        if (ring.Count < 2) return true;
        var (ax, ay) = ring[^2];
        var (bx, by) = ring[^1];
        return (bx - ax) * (y - by) - (by - ay) * (x - bx) != 0;
    }

    /// <summary>At a vertex with two outgoing edges (pixels touching at a corner), turn right to stay on the same pixel.</summary>
    static int TurnRightOrStraight(int bits, int dir)
    {
        int right = (dir + 1) & 3, straight = dir, left = (dir + 3) & 3;
        if ((bits & (1 << right)) != 0) return right;
        if ((bits & (1 << straight)) != 0) return straight;
        if ((bits & (1 << left)) != 0) return left;
        return (dir + 2) & 3;
    }

    static (double X, double Y)[] Simplify(List<(double X, double Y)> ring)
    {
        var result = new List<(double X, double Y)>(ring);
        bool changed = true;
        while (changed && result.Count > 3)
        {
            changed = false;
            for (int i = 0; i < result.Count && result.Count > 3; i++)
            {
                var a = result[(i + result.Count - 1) % result.Count];
                var b = result[i];
                var c = result[(i + 1) % result.Count];
                if ((b.X - a.X) * (c.Y - b.Y) - (b.Y - a.Y) * (c.X - b.X) == 0) { result.RemoveAt(i); changed = true; i--; }
            }
        }
        return result.ToArray();
    }

    /// <summary>Shoelace area: positive for outer rings as traced here (clockwise on screen, counter-clockwise in x-y maths).</summary>
    public static double SignedArea((double X, double Y)[] ring)
    {
        double sum = 0;
        for (int i = 0; i < ring.Length; i++)
        {
            var (x0, y0) = ring[i];
            var (x1, y1) = ring[(i + 1) % ring.Length];
            sum += x0 * y1 - x1 * y0;
        }
        return sum / 2;
    }

    /// <summary>Even-odd point-in-polygon test.</summary>
    public static bool Contains((double X, double Y)[] ring, (double X, double Y) p)
    {
        bool inside = false;
        for (int i = 0, j = ring.Length - 1; i < ring.Length; j = i++)
        {
            var (xi, yi) = ring[i];
            var (xj, yj) = ring[j];
            if ((yi > p.Y) != (yj > p.Y) && p.X < (xj - xi) * (p.Y - yi) / (yj - yi) + xi) inside = !inside;
        }
        return inside;
    }
}
